#!/usr/bin/env python3
"""Where `syncproto demo` spends its CPU, from a perf profile with call stacks:

    perf record -F 199 --call-graph dwarf,16384 -o demo.perf -- \
        target/release/syncproto demo --clients 1000 --updates 0
    perf script -i demo.perf -F comm,tid,ip,sym > demo.script
    python3 benches/demo_profile.py demo.script

Each sample is attributed by the functions on its stack (a client task, the
server, the relay, the demo itself); "in kernel" is the share whose innermost
frame is in the kernel (socket copies, page faults)."""
import sys, collections
def classify(frames):
    text = " | ".join(frames)
    if "demo::summarize" in text: return "main: verification (summarize)"
    if "syncproto::synthetic" in text: return "main: setup (synthetic datastore)"
    if "demo::run::{{closure}}::{{closure}}" in text or "run_client" in text:
        if any(s in text for s in ("demo::Report", "apply_to")):
            return "clients: the demo's handling of updates (views; freeing)"
        if "checksum" in text: return "clients: checksum (ReceivedState)"
        if any(s in text for s in ("syncproto::codec", "snap::", "syncproto::client::")):
            return "clients: decoding"
        if any(s in text for s in ("recvfrom", "sys_read", "recvmsg")):
            return "clients: socket reads"
        return "clients: driver, other"
    if any(s in text for s in ("syncproto_tokio::relay", "syncproto::relay")): return "relay"
    if any(s in text for s in ("syncproto_tokio::server", "syncproto::server", "syncproto::fanout")):
        if any(s in text for s in ("sendmsg", "sys_write", "writev", "sendto")): return "server: socket writes"
        return "server: other"
    if "demo::run::{{closure}}" in text:
        if "drop" in text: return "main: teardown (dropping client reports)"
        return "main: other"
    if "syncproto_tokio::client" in text or "syncproto::client::" in text: return "clients: other stacks"
    if any(s in text for s in ("recvfrom", "sys_read", "recvmsg")): return "kernel: socket reads (no user stack)"
    if any(s in text for s in ("sendmsg", "sys_write", "writev", "sendto")): return "server: socket writes (kernel copy; stack ends in tokio)"
    if "tokio::runtime" in text: return "tokio runtime (scheduling, parking)"
    return "other / unknown stack"
def main(path):
    counts = collections.Counter(); kern = collections.Counter(); cur = []
    def flush():
        if not cur: return
        c = classify([s for _, s in cur])
        counts[c] += 1
        if cur[0][0].startswith("ffffffff"): kern[c] += 1
    for line in open(path, errors="replace"):
        if not line.strip():
            flush(); cur.clear(); continue
        parts = line.strip().split(None, 1)
        if line[0] in "\t " and len(parts) == 2: cur.append((parts[0], parts[1]))
    flush()
    total = sum(counts.values())
    print(f"{'part':45} {'share':>6} {'in kernel':>10}")
    for c, n in sorted(counts.items(), key=lambda kv: (kv[0].split(':')[0], -kv[1])):
        print(f"{c:45} {100*n/total:5.1f}% {100*kern[c]/total:9.1f}%")
    print(f"{'total':45} {total:6d} {100*sum(kern.values())/total:9.1f}% samples, kernel")
if __name__ == "__main__": main(sys.argv[1])
