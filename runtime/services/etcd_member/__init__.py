"""An etcd cluster member as a supervised lab service (lab.etcd.yaml)."""
