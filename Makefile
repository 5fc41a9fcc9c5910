# Two entry points for a fresh Debian 12 machine (as root): `make lab` and `make test`.
.PHONY: setup lab lab-down test lint unit sanity integration-host molecule-nftables integration-guest molecule

setup:
	tools/setup.sh

lab: setup
	tools/lab/up

lab-down:
	tools/lab/down

test: setup
	tools/test.sh

lint unit sanity integration-host molecule-nftables integration-guest molecule: setup
	tools/test.sh $@
