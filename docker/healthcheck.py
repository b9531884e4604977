"""Docker HEALTHCHECK of the model server: exit 0 if GET /health on $MLOPS_LR_PORT says ok."""

import json
import os
import sys
import urllib.request

url = f"http://127.0.0.1:{os.environ.get('MLOPS_LR_PORT', '8000')}/health"
try:
    with urllib.request.urlopen(url, timeout=2) as response:
        healthy = json.load(response) == {"status": "ok"}
except (OSError, ValueError) as error:
    sys.exit(f"{url}: {error}")
sys.exit(0 if healthy else f"{url}: unexpected answer")
