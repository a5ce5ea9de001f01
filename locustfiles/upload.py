"""upload: POST /files, PUT the bytes to upload_url (no auth), run infsh/image with the
file's uri, stream to the end, download output.image.uri and compare the bytes.

Run it (web UI on http://localhost:8089, or headless):

    export HARNESS_BASE_URL=http://127.0.0.1:8000 HARNESS_API_KEYS=inf_...
    locust -f locustfiles/upload.py
    locust -f locustfiles/upload.py --headless -u 10 -r 10 -t 60s

Environment variables, exit codes and findings: locustfiles/README.md.
"""

from harness.suites.load.session import set_scenario
from harness.suites.load.users import UploadUser  # noqa: F401  (Locust runs the User classes it finds here)

set_scenario("upload")
