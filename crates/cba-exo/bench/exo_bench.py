#!/usr/bin/env python3
"""Benchmark `cba exo invoke Get-Mailbox` against a running `cba sim serve` (issue 6).

Compares the wall time of `cba exo invoke Get-Mailbox -p ResultSize=Unlimited --output jsonl` with the sim's own
serving time for the same pages (a minimal keep-alive HTTP client in this process POSTing each page and discarding
the body), and reports the peak RSS of the cba process (getrusage RUSAGE_CHILDREN, one child per measurement
process, so no /usr/bin/time needed). Runs interleaved, reports medians. Exit 1 when a target is missed.

Run it with `cargo xtask bench exo`, which does this setup first:
    cba cert new --name bench --no-password --out-dir "$TMP"
    cba sim serve --mailboxes 10000 --seed-app-cert "$TMP/bench.cer" > "$TMP/sim.json" &   # one JSON line
    export CBA_EXO_TOKEN=$(cba token --tenant <tenant_id> --client-id <seeded_app_id> --cert "$TMP/bench.pfx" \
        --authority-host <login_url> --resource exchange --no-cache)
    python3 exo_bench.py --cba target/release/cba --sim-json "$TMP/sim.json"
"""
import argparse, http.client, json, os, re, resource, statistics, subprocess, sys, time, urllib.parse

ANCHOR = "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@"


def serve_time(exchange_url, tenant, token, page_size):
    """Seconds to fetch every page with a bare client: the sim's serving time plus loopback transfer."""
    u = urllib.parse.urlsplit(exchange_url)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    body = json.dumps({"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {"ResultSize": "Unlimited"}}})
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json", "X-CmdletName": "Get-Mailbox",
               "Prefer": f"odata.maxpagesize={page_size}", "X-AnchorMailbox": ANCHOR + tenant}
    target, pages, size = f"{u.path.rstrip('/')}/adminapi/beta/{tenant}/InvokeCommand", 0, 0
    started = time.perf_counter()
    while target:
        conn.request("POST", target, body, headers)
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            sys.exit(f"sim answered {r.status}: {data[:300]!r}")
        pages, size = pages + 1, size + len(data)
        m = re.search(rb'"@odata\.nextLink"\s*:\s*"([^"]+)"', data)
        target = None
        if m:
            link = urllib.parse.urlsplit(m.group(1).decode())
            target = link.path + ("?" + link.query if link.query else "")
    conn.close()
    return time.perf_counter() - started, pages, size


def cba_run(argv):
    """(wall seconds, peak RSS MiB) of one cba run, stdout to /dev/null (a reader would compete for the CPU)."""
    child = ("import resource,subprocess,sys,time\n"
             "t=time.perf_counter()\n"
             "rc=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL).returncode\n"
             "w=time.perf_counter()-t\n"
             "print(rc,w,resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", child, *argv], capture_output=True, text=True)
    rc, wall, rss_kib = out.stdout.split()
    if rc != "0":
        sys.exit(f"cba failed ({rc}): {out.stderr}")
    return float(wall), int(rss_kib) / 1024


def cba_lines(argv):
    """Objects printed by one (untimed) run."""
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if out.returncode != 0:
        sys.exit(f"cba failed ({out.returncode}): {out.stderr.decode(errors='replace')}")
    return out.stdout.count(b"\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cba", default="target/release/cba", help="the cba binary (or a wrapper taking `exo ...`)")
    ap.add_argument("--sim-json", help="the JSON line `cba sim serve` printed (exchange_url, tenant_id)")
    ap.add_argument("--exchange-url")
    ap.add_argument("--tenant")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--page-size", type=int, default=1000)
    ap.add_argument("--expect", type=int, default=10000, help="mailboxes the sim holds")
    ap.add_argument("--max-ratio", type=float, default=1.2)
    ap.add_argument("--max-rss-mib", type=float, default=30.0)
    ap.add_argument("--exclude-startup", action="store_true",
                    help="judge the ratio after subtracting cba's fixed cost (a one-object Get-OrganizationConfig run)")
    a = ap.parse_args()
    info = json.load(open(a.sim_json)) if a.sim_json else {}
    url, tenant = a.exchange_url or info["exchange_url"], a.tenant or info["tenant_id"]
    token = os.environ["CBA_EXO_TOKEN"]
    argv = [a.cba, "exo", "invoke", "Get-Mailbox", "-p", "ResultSize=Unlimited", "--page-size", str(a.page_size),
            "--tenant", tenant, "--exchange-url", url, "--access-token-env", "CBA_EXO_TOKEN", "--output", "jsonl"]
    serve_time(url, tenant, token, a.page_size)  # warm the sim
    lines = cba_lines(argv)
    if lines != a.expect:
        sys.exit(f"cba printed {lines} objects, expected {a.expect}")
    startup_argv = [a.cba, "exo", "invoke", "Get-OrganizationConfig", "--tenant", tenant, "--exchange-url", url,
                    "--access-token-env", "CBA_EXO_TOKEN", "--output", "jsonl"]
    serve, cba, rss, startup = [], [], [], []
    for _ in range(a.runs):
        t, pages, size = serve_time(url, tenant, token, a.page_size)
        serve.append(t)
        w, r = cba_run(argv)
        cba.append(w)
        rss.append(r)
        startup.append(cba_run(startup_argv)[0])
    s, c, peak, fixed = statistics.median(serve), statistics.median(cba), max(rss), statistics.median(startup)
    ratio = (c - fixed) / s if a.exclude_startup else c / s
    print(json.dumps({"pages": pages, "bytes": size, "objects": a.expect, "runs": a.runs,
                      "sim_serving_s": round(s, 4), "cba_wall_s": round(c, 4), "ratio": round(c / s, 3),
                      "cba_fixed_cost_s": round(fixed, 4), "ratio_excluding_fixed_cost": round((c - fixed) / s, 3),
                      "cba_peak_rss_mib": round(peak, 1)}))
    ok = ratio <= a.max_ratio and peak <= a.max_rss_mib
    print(f"{'PASS' if ok else 'FAIL'}: wall {c:.3f}s (fixed cost {fixed:.3f}s) vs sim {s:.3f}s "
          f"(x{ratio:.2f}{' without the fixed cost' if a.exclude_startup else ''}, target <= {a.max_ratio}), "
          f"peak RSS {peak:.1f} MiB (target <= {a.max_rss_mib})", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
