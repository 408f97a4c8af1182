"""Pipeline stages: pure functions of arrays and parameters, one module per stage."""
