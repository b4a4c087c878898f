#!/usr/bin/env python3
"""The probes of issue 13, run against a real `intake serve` (release build) on
PostgreSQL through a TCP proxy this script can cut, and on SQLite. Prints one line per
probe with what was measured.

    python3 scripts/probes/probe.py [--binary target/release/intake] [--pg URL]

Needs the PostgreSQL server of the machine (trust auth); each run uses a schema of its
own and drops it. Nothing but 127.0.0.1 is contacted.
"""
import argparse, hashlib, json, os, socket, subprocess, sys, tempfile, threading, time, urllib.request

READER, OPS = "probe-reader", "probe-ops"


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port


def raw(port, data, timeout=10):
    """Sends bytes; the answer's status, headers and body (until the server closes)."""
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(timeout)
    try:
        s.sendall(data)
    except OSError:
        pass
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except OSError:
        pass
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0] else 0
    headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    return status, headers, body


def request(port, method, path, token=None, body=None, ctype=None, timeout=30):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if ctype:
        req.add_header("Content-Type", ctype)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            headers = {k.lower(): v for k, v in res.headers.items()}
            return res.status, headers, res.read(), time.monotonic() - started
    except urllib.error.HTTPError as e:
        headers = {k.lower(): v for k, v in e.headers.items()}
        return e.code, headers, e.read(), time.monotonic() - started


class Proxy:
    """A TCP proxy in front of PostgreSQL that can be cut, as an outage would."""

    def __init__(self, upstream):
        self.upstream, self.sockets, self.open = upstream, [], True
        self.listener = socket.socket(); self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0)); self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while self.open:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close(); return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    @staticmethod
    def pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass

    def cut(self):
        self.open = False
        self.listener.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(binary, env, workdir):
    port = free_port()
    full = dict(os.environ, INTAKE_LISTEN=f"127.0.0.1:{port}", INTAKE_LOG="warn",
                INTAKE_LOG_FORMAT="json", INTAKE_RATE_LIMIT_PER_SECOND="0", **env)
    log = open(os.path.join(workdir, f"serve-{port}.log"), "w")
    proc = subprocess.Popen([binary, "serve"], env=full, cwd=workdir, stdout=log, stderr=log)
    for _ in range(300):
        try:
            if request(port, "GET", "/healthz", timeout=1)[0] == 200:
                return proc, port
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"intake did not start: {open(log.name).read()}")


def stalled_upload(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/datasets/customers/imports HTTP/1.1\r\nHost: x\r\n"
              b"Authorization: Bearer probe-ops\r\nContent-Type: text/csv\r\n"
              b"Content-Length: 100000000\r\n\r\nid,first")
    return s


def probe_uploads(port, contract, csv, pool):
    sockets = [stalled_upload(port) for _ in range(3 * pool)]
    time.sleep(0.5)
    listing = [request(port, "GET", "/v1/datasets", OPS) for _ in range(5)]
    worst = max(t for *_, t in listing)
    status, _, body, took = request(port, "POST", "/v1/datasets/customers/imports?wait=true",
                                    OPS, csv, "text/csv")
    print(f"slow uploads: {3 * pool} stalled (pool {pool}): GET /v1/datasets "
          f"{[s for s, *_ in listing]} worst {worst * 1000:.0f} ms; a small import "
          f"{status} {json.loads(body).get('status')} in {took * 1000:.0f} ms")
    more = [stalled_upload(port) for _ in range(32 - 3 * pool)]
    time.sleep(0.5)
    status, headers, body, _ = request(port, "POST", "/v1/datasets/customers/imports",
                                       OPS, csv + b"\n", "text/csv")
    print(f"upload cap: the 33rd upload answers {status} {json.loads(body)['code']} "
          f"Retry-After {headers.get('retry-after')}")
    for s in sockets + more:
        s.close()


def probe_paths(port):
    spellings = ["/metrics", "/%6detrics", "/metric%73", "/%6D%65%74%72%69%63%73", "/metrics/", "//metrics"]
    answers = {p: request(port, "GET", p, READER)[0] for p in spellings}
    print(f"encoded paths with a read token: {answers}")
    writes = {p: request(port, "POST", p, READER, b"{}", "application/json")[0]
              for p in ["/v1/datasets", "/v1/%64atasets", "/%69mport"]}
    print(f"writes with a read token: {writes}")


def probe_http_layer(port):
    many = "".join(f"X-H{i}: v\r\n" for i in range(120))
    cases = {
        "bad header bytes": b"GET /v1/datasets HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n",
        "120 headers": f"GET /v1/datasets HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode(),
        "100 KB URL": f"GET /v1/datasets?q={'a' * 102400} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        "Content-Length: -1": b"POST /v1/datasets HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        "PUT on a GET/POST route": b"PUT /v1/datasets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer probe-ops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "HEAD /v1/datasets": b"HEAD /v1/datasets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer probe-ops\r\nConnection: close\r\n\r\n",
    }
    for what, data in cases.items():
        status, headers, body = raw(port, data)
        print(f"http layer: {what}: {status} {headers.get('content-type')} "
              f"allow={headers.get('allow')} body={len(body)} bytes")
    status, _, body, _ = request(port, "GET", "/readyz")
    print(f"readyz: {status} {body.decode()}")


def probe_outage(port, proxy):
    proxy.cut()
    for path in ["/v1/datasets", "/v2/datasets", "/v1/datasets/customers/records"]:
        status, headers, body, took = request(port, "GET", path, OPS)
        code = json.loads(body).get("code") if body else None
        print(f"outage: GET {path}: {status} {code} Retry-After {headers.get('retry-after')} "
              f"in {took * 1000:.0f} ms")


def probe_secrets(binary, workdir, pg_host):
    forms = [f"postgres://postgres:s3cret@{pg_host}/intake_no_such_db",
             f"postgres://postgres@{pg_host}/intake_no_such_db?password=s3cret&sslmode=bogus",
             f"postgres://postgres:s3c?ret@{pg_host}/intake_no_such_db"]
    leaks = 0; runs = 0
    for url in forms:
        for args in (["check"], ["migrate"], ["serve"]):
            env = dict(os.environ, INTAKE_DATABASE_URL=url, INTAKE_LOG="debug",
                       INTAKE_LOG_FORMAT="json", INTAKE_LISTEN=f"127.0.0.1:{free_port()}")
            try:
                out = subprocess.run([binary] + args, env=env, cwd=workdir, capture_output=True, timeout=20)
                text = out.stdout + out.stderr
            except subprocess.TimeoutExpired as e:
                text = (e.stdout or b"") + (e.stderr or b"")
            runs += 1; leaks += b"s3c" in text
    for url in ["redis://:s3cret@127.0.0.1:9", "redis://u:s3c?ret@127.0.0.1:9/0"]:
        env = dict(os.environ, INTAKE_DATABASE_URL="sqlite://./secrets.db", INTAKE_REDIS_URL=url,
                   INTAKE_LOG="debug", INTAKE_LOG_FORMAT="json")
        out = subprocess.run([binary, "check"], env=env, cwd=workdir, capture_output=True, timeout=20)
        runs += 1; leaks += b"s3c" in out.stdout + out.stderr
    print(f"secrets: {runs} runs of check/migrate/serve with a password in the URL "
          f"(credentials, query string, unencoded '?'): {leaks} printed it")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default="target/release/intake")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    contract = json.load(open(os.path.join(root, "examples/contracts/customers.json")))
    csv = open(os.path.join(root, "examples/data/customers.csv"), "rb").read()
    tokens = f"reader:{sha(READER)}:read;ops:{sha(OPS)}:admin"
    pg_host = args.pg.split("@", 1)[1].split("/", 1)[0]
    host, port = pg_host.split(":")
    schema = f"intake_probe_{os.getpid()}"
    with tempfile.TemporaryDirectory() as workdir:
        proxy = Proxy((host, int(port)))
        pg_url = args.pg.replace(pg_host, f"127.0.0.1:{proxy.port}")
        proc, api = serve(binary, {"INTAKE_DATABASE_URL": pg_url, "INTAKE_DATABASE_SCHEMA": schema,
                                   "INTAKE_AUTH_TOKENS": tokens}, workdir)
        try:
            print(f"PostgreSQL ({binary}):")
            request(api, "POST", "/v1/datasets", OPS,
                    json.dumps({"name": "customers", "contract": contract}).encode(), "application/json")
            probe_uploads(api, contract, csv, pool=10)
            probe_paths(api)
            probe_http_layer(api)
            probe_outage(api, proxy)
        finally:
            proc.terminate(); proc.wait()
            subprocess.run(["psql", "-q", args.pg, "-c", f"DROP SCHEMA IF EXISTS {schema} CASCADE"],
                           capture_output=True)
        proc, api = serve(binary, {"INTAKE_DATABASE_URL": "sqlite://./probe.db", "INTAKE_AUTH_TOKENS": tokens}, workdir)
        try:
            print("SQLite:")
            request(api, "POST", "/v1/datasets", OPS,
                    json.dumps({"name": "customers", "contract": contract}).encode(), "application/json")
            probe_uploads(api, contract, csv, pool=8)
        finally:
            proc.terminate(); proc.wait()
        probe_secrets(binary, workdir, pg_host)


if __name__ == "__main__":
    main()
