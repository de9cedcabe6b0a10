"""Post-mortem contract verification: learn likely contracts from traces of passing runs
(``infer``), keep them in a reviewed TOML file (``model``), and check a later trace offline
against them (``check``), without re-running the program.

The data path: records -> ``observe`` (one value per call and variable, columnar) ->
``infer`` (Daikon's families, statistically justified) -> ``model`` (the file) ->
``check`` (every call that breaks a contract) -> ``report`` (text, JSON, SARIF, JUnit).
docs/contracts.md explains the families, the justification and the novelty/violation split.
"""
