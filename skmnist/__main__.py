import sys

try:
    from skmnist._cli import INTERRUPTED, main
    from skmnist._interrupts import forget_interrupts_c_code_saw
except KeyboardInterrupt:  # Ctrl-C before the command's own handling is in place
    print("skmnist: interrupted", file=sys.stderr)
    sys.exit(130)

status = main()
if status == INTERRUPTED:  # handled: the status stays 130 (see the function)
    forget_interrupts_c_code_saw()
sys.exit(status)
