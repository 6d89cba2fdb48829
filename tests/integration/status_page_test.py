"""The status page in a real headless browser (Debian's chromium).

Starts the real server, causes an incident through the gRPC API (python3-grpcio),
loads /status in chromium, and checks that the page loads without errors,
shows the incident and the gateway's components, and keeps no external assets.
Screenshots (desktop and phone widths) are kept as test artefacts.

Usage: status_page_test.py SERVER_BINARY GENERATED_PY_DIR ARTIFACT_DIR
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.request

SERVER = sys.argv.pop(1)
sys.path.insert(0, sys.argv.pop(1))
ARTIFACTS = sys.argv.pop(1)

import grpc  # noqa: E402
import test_store  # noqa: E402
from switchyard.v1 import gateway_pb2  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class StatusPageTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.log = open(os.path.join(self.dir.name, "server.log"), "wb")
        self.proc = subprocess.Popen(
            [SERVER, "--listen=127.0.0.1:0", "--data_dir=" + self.dir.name, "--port_file=-",
             "--dev_mode", "--http_listen=127.0.0.1:0"] + test_store.server_flags(),
            stdout=subprocess.PIPE, stderr=self.log)
        self.port = int(self.proc.stdout.readline())
        with open(os.path.join(self.dir.name, "dev-operator-key")) as f:
            self.key = f.read().strip()
        self.http_port = None
        with open(os.path.join(self.dir.name, "server.log")) as f:
            for line in f:
                entry = json.loads(line)
                if entry.get("msg") == "serving":
                    self.http_port = entry["http_port"]
        self.assertIsNotNone(self.http_port)
        self.channel = grpc.insecure_channel("127.0.0.1:%d" % self.port)

    def tearDown(self):
        self.channel.close()
        self.proc.terminate()
        self.assertEqual(self.proc.wait(timeout=60), 0)
        self.log.close()
        self.dir.cleanup()

    def call(self, method, request, response_type):
        rpc = self.channel.unary_unary(
            "/switchyard.v1.Gateway/" + method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_type.FromString)
        return rpc(request, timeout=10, metadata=[("authorization", "Bearer " + self.key)])

    def chromium(self, *args):
        profile = tempfile.mkdtemp(dir=self.dir.name)
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0", *args],
            capture_output=True, text=True, timeout=120)

    def test_the_page_shows_the_incident_the_test_caused(self):
        incident = self.call("CreateIncident", gateway_pb2.CreateIncidentRequest(
            incident=gateway_pb2.Incident(title="Webhook delays in EU (test)",
                                          component="gateway/webhook-ingest",
                                          severity=gateway_pb2.Incident.MAJOR)),
            gateway_pb2.Incident)
        self.assertEqual(incident.state, gateway_pb2.Incident.OPEN)
        url = "http://127.0.0.1:%d/status" % self.http_port

        with urllib.request.urlopen(url + ".json") as response:
            report = json.load(response)
        self.assertEqual(report["overall"], "DEGRADED")
        self.assertEqual(report["open_incidents"][0]["title"], "Webhook delays in EU (test)")

        dom = self.chromium("--dump-dom", url)
        self.assertEqual(dom.returncode, 0, dom.stderr[-2000:])
        page = dom.stdout
        self.assertIn("Webhook delays in EU (test)", page)
        self.assertIn("Partially degraded", page)
        self.assertIn("gateway/store", page)
        self.assertIn('name="viewport"', page)
        # Self-contained: nothing loaded from elsewhere.
        for marker in ("<script src", "<link ", "<img ", "url(http"):
            self.assertNotIn(marker, page)
        errors = [line for line in dom.stderr.splitlines()
                  if "CONSOLE" in line or "Refused to" in line or "Failed to load" in line]
        self.assertEqual(errors, [])

        os.makedirs(ARTIFACTS, exist_ok=True)
        for name, size in (("status-desktop.png", "1280,1000"), ("status-phone.png", "390,844")):
            path = os.path.join(ARTIFACTS, name)
            if os.path.exists(path):
                os.remove(path)
            shot = self.chromium("--window-size=" + size, "--screenshot=" + path, url)
            self.assertEqual(shot.returncode, 0, shot.stderr[-2000:])
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
            self.assertGreater(os.path.getsize(path), 10000)


if __name__ == "__main__":
    unittest.main(verbosity=2)
