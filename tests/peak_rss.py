"""Code for a test's fresh `python -c` process that reports its own peak resident size.

It reads VmHWM, not `ru_maxrss`: Linux keeps `ru_maxrss` across exec, so a process started from a large
test process would report that process's peak instead of its own.
"""

DEFINE_PEAK_RSS_KIB = """
def peak_rss_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
"""
