import sys

from verify_aws.cli import main

sys.exit(main())
