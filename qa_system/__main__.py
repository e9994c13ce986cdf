import sys

from qa_system.cli import main

sys.exit(main())
