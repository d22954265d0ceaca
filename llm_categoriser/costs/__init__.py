"""What a run costs: token usage, prices per model, the estimate before spending, the cap
(docs/DESIGN.md §31).

* ``usage.py``: token counts as a provider reports them for one request (prompt, cached,
  output, thinking) and their sums.
* ``prices.py``: a provider's price list (``genai-prices`` bundled data, then the dated
  table of ``price_table.py``), the cost of one request, the batch discount.
* ``estimate.py``: the offline token estimate of the requests a plan will send, and its cost.
* ``ledger.py``: the spend of the current run, shared by every job of the run (a small file
  under the data folder, updated under a lock), and the outputs the cap cut short.
* ``meter.py``: what a job consults before each request (is the cap reached?) and after it
  (price the provider's usage and add it to the ledger).

Nothing here knows a provider by name: each provider names its price list and its
characters-per-token calibration, and the logic here is the same for all of them.
"""
