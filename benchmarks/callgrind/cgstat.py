#!/usr/bin/env python3
"""Per-request figures from two callgrind profiles of the same request mix.

  cgstat.py SMALL.out LARGE.out EXTRA_REQUESTS [--profile [TOP]] [--callers REGEX]

SMALL and LARGE are callgrind outputs of two Ferry runs that differ only in the number of
requests (LARGE served EXTRA_REQUESTS more). Start-up, connection set-up and shutdown cost
the same in both, so (LARGE - SMALL) / EXTRA_REQUESTS is the steady-state cost of one
request. Prints key=value lines (ir_per_request, allocs_per_request, ...) and, with
--profile, the TOP functions by self and inclusive cost per request and every allocation
site per request; --callers lists, per request, who calls the functions matching REGEX
(a Python regex searched in the full name), with calls and inclusive Ir.

Allocations are calls into malloc, calloc, realloc, aligned_alloc, posix_memalign, memalign,
valloc and pvalloc (operator new and std::allocator end there), counted from callgrind's
call counts. For the call sites to be named, run callgrind with
--separate-callers<D>=<fn> for those functions (the check script uses depth 10): each call
then carries its chain of callers. Python 3 standard library only.
"""
import collections
import re
import sys

ALLOC_FNS = ("malloc", "calloc", "realloc", "aligned_alloc", "posix_memalign", "memalign",
             "valloc", "pvalloc")
NAME_RE = re.compile(r"^\((\d+)\)(?: (.*))?$")


class Profile:
    def __init__(self, path):
        self.total = 0
        self.self_cost = collections.Counter()      # base function name -> Ir
        self.call_cost = collections.Counter()      # caller base name -> Ir spent in callees
        self.alloc_calls = collections.Counter()    # full callee context -> calls
        self.calls_to = collections.Counter()       # callee base name -> calls
        self.edges = collections.defaultdict(lambda: [0, 0])  # (caller, callee) -> [calls, Ir]
        self._parse(path)

    def _parse(self, path):
        names = {}  # compressed-name tables, one per kind

        def name(kind, text):
            m = NAME_RE.match(text)
            if not m:
                return text
            table = names.setdefault(kind, {})
            if m.group(2) is not None:
                table[m.group(1)] = m.group(2)
            return table.get(m.group(1), "?")

        npos = 1
        fn = "?"
        cfn = None
        pending_call = None  # (callee, count): the next cost line is the call's inclusive cost
        summary = totals = None
        with open(path, encoding="utf-8", errors="replace") as f:
            for raw in f:
                line = raw.rstrip("\n")
                if not line or line[0] == "#":
                    continue
                c = line[0]
                if c.isdigit() or c in "+-*":
                    if pending_call is not None:
                        callee, count = pending_call
                        pending_call = None
                        cost = line.split()
                        ir = int(cost[npos]) if len(cost) > npos else 0
                        base_callee = callee.split("'", 1)[0]
                        if base_callee != fn.split("'", 1)[0]:
                            self.call_cost[fn.split("'", 1)[0]] += ir
                        self.calls_to[base_callee] += count
                        edge = self.edges[(fn.split("'", 1)[0], base_callee)]
                        edge[0] += count
                        edge[1] += ir
                        frames = callee.split("'")
                        # An allocation function that calls another (memalign -> _mid_memalign
                        # -> malloc, realloc(NULL) -> malloc) counts once, at the outer call.
                        if frames[0] in ALLOC_FNS and not any(f in ALLOC_FNS for f in frames[1:4]) \
                                and fn.split("'", 1)[0] not in ALLOC_FNS:
                            self.alloc_calls[callee] += count
                        continue
                    cost = line.split()
                    if len(cost) > npos:
                        self.self_cost[fn.split("'", 1)[0]] += int(cost[npos])
                    continue
                key, _, val = line.partition("=")
                if key == "fn":
                    fn = name("fn", val)
                elif key == "cfn":
                    cfn = name("fn", val)
                elif key == "calls":
                    pending_call = (cfn, int(val.split()[0]))
                elif key in ("ob", "fl", "fi", "fe", "cob", "cfi", "cfl"):
                    name("ob" if key in ("ob", "cob") else "fl", val)
                elif line.startswith("positions:"):
                    npos = len(line.split(":", 1)[1].split())
                elif line.startswith("events:"):
                    if line.split(":", 1)[1].split()[0] != "Ir":
                        sys.exit("cgstat: first event is not Ir: " + line)
                elif line.startswith("summary:"):
                    summary = int(line.split()[1])
                elif line.startswith("totals:"):
                    totals = int(line.split()[1])
        self.total = totals if totals is not None else summary
        if self.total is None:
            self.total = sum(self.self_cost.values())

    def allocs(self):
        return sum(self.alloc_calls.values())


def strip_params(fn):
    """'ns::f(int, char const*) const' -> 'ns::f'; keeps template and lambda names whole."""
    fn = fn.strip()
    fn = re.sub(r" \[clone [^\]]*\]$", "", fn)
    fn = re.sub(r" const$", "", fn)
    if fn.endswith(")"):
        depth = 0
        for i in range(len(fn) - 1, -1, -1):
            if fn[i] == ")":
                depth += 1
            elif fn[i] == "(":
                depth -= 1
                if depth == 0:
                    fn = fn[:i]
                    break
    # Drop a leading return type ("void std::foo<...>" -> "std::foo<...>").
    depth = 0
    for i, ch in enumerate(fn):
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        elif ch == " " and depth == 0 and not fn.startswith(("non-virtual thunk to", "virtual thunk to", "operator")):
            fn = fn[i + 1:]
            break
    return fn


def drop_allocators(fn):
    """Removes ', std::allocator<...>' template arguments."""
    while True:
        i = fn.find(", std::allocator<")
        if i < 0:
            return fn
        depth, j = 0, i + 2
        while j < len(fn):
            if fn[j] == "<":
                depth += 1
            elif fn[j] == ">":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        end = j + 1
        if fn[end:end + 2] == " >":  # "Foo<A, std::allocator<A> >" -> "Foo<A>"
            end += 1
        fn = fn[:i] + fn[end:]


def shorten(fn, width=110):
    fn = strip_params(fn)
    fn = fn.replace("std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >", "std::string")
    fn = drop_allocators(fn)
    fn = fn.replace("std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >", "std::string")
    fn = fn.replace("ferry::", "").replace("(anonymous namespace)::", "")
    fn = fn.replace("non-virtual thunk to ", "thunk:")
    fn = fn.replace("boost::asio::detail::", "asio::")
    return fn if len(fn) <= width else fn[:width - 3] + "..."


LIBRARY_FRAME = re.compile(r"^(operator new|operator delete|std::|__gnu_cxx::|void std::|boost::|absl::|"
                           r"llhttp|__|0x|\?\?\?)")


def site(context):
    """An allocation context 'malloc'f1'f2'... -> (first project frame, library frames before it)."""
    frames = context.split("'")[1:]
    lib = []
    for fr in frames:
        if LIBRARY_FRAME.match(fr) or LIBRARY_FRAME.match(strip_params(fr)):
            lib.append(fr)
            continue
        return fr, lib
    return (frames[-1] if frames else "?"), lib


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    small, large, extra = Profile(argv[0]), Profile(argv[1]), int(argv[2])
    top = None
    if "--profile" in argv:
        i = argv.index("--profile")
        top = int(argv[i + 1]) if len(argv) > i + 1 and argv[i + 1].isdigit() else 15
    ir = (large.total - small.total) / extra
    allocs = (large.allocs() - small.allocs()) / extra
    news = sum(large.calls_to[k] - small.calls_to[k] for k in large.calls_to
               if k.startswith("operator new")) / extra
    frees = (large.calls_to["free"] - small.calls_to["free"]) / extra
    print("ir_per_request=%.1f" % ir)
    # A difference of a call or two in start-up or shutdown between the runs can make a
    # zero count come out as -0.00.
    def per_request(x):
        s = "%.2f" % x
        return "0.00" if s == "-0.00" else s
    print("allocs_per_request=" + per_request(allocs))
    print("operator_new_per_request=" + per_request(news))
    print("free_per_request=" + per_request(frees))
    print("ir_small=%d ir_large=%d allocs_small=%d allocs_large=%d" %
          (small.total, large.total, small.allocs(), large.allocs()))
    if "--callers" in argv:
        pat = re.compile(argv[argv.index("--callers") + 1])
        keys = {k for k in set(large.edges) | set(small.edges) if pat.search(k[1])}
        rows = []
        for k in keys:
            a, b = small.edges.get(k, (0, 0)), large.edges.get(k, (0, 0))
            if b[0] - a[0]:
                rows.append(((b[1] - a[1]) / extra, (b[0] - a[0]) / extra, k))
        print("\nCallers of /%s/ (calls and inclusive Ir per request)" % pat.pattern)
        for ir_, n, (caller, callee) in sorted(rows, reverse=True):
            print("  %7.2f calls %9.1f Ir  %s -> %s" % (n, ir_, shorten(caller, 80), shorten(callee, 40)))
    if top is None:
        return

    def table(title, cost_of, keys, n):
        rows = sorted(((cost_of(k), k) for k in keys), reverse=True)[:n]
        print("\n%s (Ir per request; %% of %.0f)" % (title, ir))
        for v, k in rows:
            print("  %9.1f %5.1f%%  %s" % (v, 100.0 * v / ir if ir else 0, shorten(k)))

    fns = set(large.self_cost) | set(small.self_cost)
    table("Top %d functions by self cost" % top,
          lambda k: (large.self_cost[k] - small.self_cost[k]) / extra, fns, top)
    incl = lambda p, k: p.self_cost[k] + p.call_cost[k]
    plumbing = re.compile(r"^(start_thread|clone|0x|std::thread::_State_impl|boost::asio::io_context::run|"
                          r"boost::asio::detail::scheduler::run\(|main$|__libc_start)")
    table("Top %d functions by inclusive cost (thread start and io_context::run left out)" % top,
          lambda k: (incl(large, k) - incl(small, k)) / extra,
          {k for k in fns | set(large.call_cost) if not plumbing.match(k)}, top)

    print("\nAllocation sites (calls per request; first Ferry frame <- its caller, via library frames)")
    by_site = collections.Counter()
    for ctx in set(large.alloc_calls) | set(small.alloc_calls):
        d = large.alloc_calls[ctx] - small.alloc_calls[ctx]
        if not d:
            continue
        frames = ctx.split("'")
        first, lib = site(ctx)
        rest = frames[frames.index(first) + 1:] if first in frames else []
        caller = shorten(rest[0], 60) if rest else "?"
        via = " via " + " > ".join(shorten(x, 70) for x in reversed(lib)) if lib else ""
        by_site["%s <- %s%s [%s]" % (shorten(first, 80), caller, via, frames[0])] += d
    for key, d in sorted(by_site.items(), key=lambda kv: (-kv[1], kv[0])):
        print("  %7.2f  %s" % (d / extra, key))
    print("  %7.2f  total" % allocs)


if __name__ == "__main__":
    main(sys.argv[1:])
