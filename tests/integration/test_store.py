"""The store the Python end-to-end tests run the server on (see
tests/support/test_store.h): the embedded one, or, when SWITCHYARD_TEST_POSTGRES
names the directory of the test PostgreSQL server, a fresh schema of it."""

import glob
import os
import secrets
import subprocess


def server_flags():
    """Server flags selecting the store; [] for the embedded one."""
    pg = os.environ.get("SWITCHYARD_TEST_POSTGRES")
    if not pg:
        return []
    with open(os.path.join(pg, "url")) as f:
        url = f.read().strip()
    with open(os.path.join(pg, "password")) as f:
        password = f.read().strip()
    schema = "py" + secrets.token_hex(8)
    psql = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))[-1]
    subprocess.run([psql, "-q", "-c", "CREATE SCHEMA " + schema, url], check=True,
                   env=dict(os.environ, PGPASSWORD=password))
    return ["--database_url=%s?options=-csearch_path%%3D%s" % (url, schema),
            "--database_password_file=" + os.path.join(pg, "password")]
