"""The clearing engine: a uniform-price double auction (`clear`) and its O(n) checker (`verify`).

Rule R and the payment rule are stated in `engine`; each step lives in its own module (`book` reads
and checks the input, `selftrade` nets an owner's own crossing orders, `sweep` finds the allocation,
`apportion` rations and shares money, `result` and `merkle` build the certificate, `verification`
re-checks it) and `reference` is the brute-force twin the tests and the benchmark compare against.
"""

from gridtokenx.market.clearing.engine import clear
from gridtokenx.market.clearing.model import Certificate, ClearingResult, Order
from gridtokenx.market.clearing.verification import verify

__all__ = ["Certificate", "ClearingResult", "Order", "clear", "verify"]
