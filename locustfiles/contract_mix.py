"""contract_mix: the contract's own generated requests (schemathesis, from contracts/openapi.yaml,
seeded by HARNESS_SEED) replayed at load; one answer in four is judged against the contract
(LD-CONTRACT-UNDER-LOAD). Task paths use tasks the users create with the profile's quick app.

Run it (web UI on http://localhost:8089, or headless):

    export HARNESS_BASE_URL=http://127.0.0.1:8000 HARNESS_API_KEYS=inf_...
    locust -f locustfiles/contract_mix.py
    locust -f locustfiles/contract_mix.py --headless -u 10 -r 10 -t 60s

Environment variables, exit codes and findings: locustfiles/README.md.
"""

from harness.suites.load.session import set_scenario
from harness.suites.load.users import ContractMixUser  # noqa: F401  (Locust runs the User classes it finds here)

set_scenario("contract_mix")
