-- shrinkvec 0.2.0 -> 0.3.0: security and extreme values (issues 26, 32, 33).
-- After this script the extension's objects equal a fresh 0.3.0 install (tests/test_lifecycle.py).

\echo Use "ALTER EXTENSION shrinkvec UPDATE TO '0.3.0'" to load this file. \quit
