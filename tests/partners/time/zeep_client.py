#!/usr/bin/env python3
"""A student's SOAP time client: zeep built from the service's WSDL, calling the
operation by the name the student chose (get_time, get_datetime or
get_current_datetime), as the course's Python client does before every request.

Usage: python3 zeep_client.py WSDL_URL OPERATION [DUMMY]

With DUMMY, the operation is called with it as its one positional argument, as the
client of a student whose own service declares a (dummy) input part calls it.

Prints the answer on stdout and exits 0 when it is a `dd/mm/YYYY HH:MM:SS`
string; exits 1 (reason on stderr) when the call fails or the answer is not one;
exits 3 when zeep is not installed (the Rust test decides whether that skips).
"""
import sys
from datetime import datetime

try:
    import zeep
except ImportError:
    print("zeep is not installed (pip install zeep)", file=sys.stderr)
    sys.exit(3)


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 1
    wsdl, operation = sys.argv[1], sys.argv[2]
    client = zeep.Client(wsdl, transport=zeep.Transport(timeout=10, operation_timeout=10))
    answer = getattr(client.service, operation)(*sys.argv[3:])
    if not isinstance(answer, str) or len(answer) != 19:
        print("%s returned %r" % (operation, answer), file=sys.stderr)
        return 1
    try:
        datetime.strptime(answer, "%d/%m/%Y %H:%M:%S")
    except ValueError:
        print("%s returned %r, not dd/mm/YYYY HH:MM:SS" % (operation, answer), file=sys.stderr)
        return 1
    print(answer)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # any zeep or transport error fails the test, reported
        print("SOAP call failed: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
