import sys

from skmnist._cli import INTERRUPTED, main
from skmnist._interrupts import forget_interrupts_c_code_saw

status = main()
if status == INTERRUPTED:  # handled: the status stays 130 (see the function)
    forget_interrupts_c_code_saw()
sys.exit(status)
