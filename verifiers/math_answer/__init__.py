"""The ``math`` verifier: is the final answer in a reply mathematically the reference answer?

Pipeline, one module each:

* ``reasoner.verifiers.extract``: find the final answer (last ``\\boxed{}``/``\\fbox{}``, ``#### n``,
  "the answer is ...", optionally the last number). Strategies are set per verifier
  (``strategies=``) or per example (``meta["extract"]``); RL training usually wants the strict
  ``boxed`` form so the policy learns the format.
* ``latex``: clean-up and a whitelist tokenizer; ``parser``: a recursive-descent parser that
  builds sympy objects directly. No ``eval``, ``sympify`` or ``parse_expr`` ever sees model text.
* ``compare``: the equivalence rules (numbers with tolerance, expressions, equations, tuples,
  sets, intervals, matrices, percentages, degrees, units, choices).
* ``pool``: worker processes with a time and memory bound per check; ``verifier``: the
  `MathVerifier` plugin with an in-process fast path for plain numbers.

Verdict reasons: ``correct``, ``wrong``, ``no_answer``, ``unparsable``, ``timeout`` (and
``verifier_error`` if the checker itself fails). ``details`` holds the extracted answer, the
strategy that found it, the normalised forms of both sides and the rule that decided.
``docs/verifiers.md`` documents the grammar, the rules and the bounds.
"""

from reasoner.verifiers.extract import DEFAULT, STRATEGIES, STRICT, extract, last_boxed
from reasoner.verifiers.math_answer.verifier import REASONS, MathVerifier, quick_compare

__all__ = ["DEFAULT", "REASONS", "STRATEGIES", "STRICT", "MathVerifier", "extract", "last_boxed", "quick_compare"]
