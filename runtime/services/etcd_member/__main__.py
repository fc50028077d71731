"""``python -m runtime.services.etcd_member``: one etcd member of the lab's cluster."""

import sys

from runtime.services.etcd_member.member import main

sys.exit(main())
