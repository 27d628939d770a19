import sys

from skmnist._cli import main

sys.exit(main())
