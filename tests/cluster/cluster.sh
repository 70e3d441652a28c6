#!/usr/bin/env bash
# A real multi-node Slurm on one machine, for the integration tests and the demo.
#
# Each node is one slurmd in its own network, mount and UTS namespace (own
# address on a private bridge, own hostname, own tmpfs /dev/shm and /run/pylaunch);
# slurmctld and munged run on the host. Must run as root. Run in another root
# (tests/cluster/suite.sh), the nodes run from that same root.
#
#   cluster.sh deps             install the Debian packages the cluster needs
#   cluster.sh up               (re)boot the cluster: env NODES PLUGIN PLUGIN_ARGS PROLOG_FLAGS
#                               JOB_CONTAINER CLUSTER_DIR TEST_USER CGROUP
#                               (JOB_CONTAINER=tmpfs: job_container/tmpfs, from 25.11
#                               namespace/tmpfs, with its default Dirs=/tmp,/dev/shm;
#                               NODE_HOSTS=misleading: inside the nodes each node name
#                               resolves to an unused address, so only NodeAddr reaches it;
#                               CGROUP=v1: proctrack/cgroup, task/cgroup and cgroup/v1 with
#                               PrologFlags=Contain; each node's cgroups are slurm_<node> in the
#                               host's v1 hierarchies, Debian's slurmd being built with
#                               multiple-slurmd support; CGROUP_RAM=no: ConstrainRAMSpace=no;
#                               CR_MEMORY=yes: memory is a consumable resource, CR_Core_Memory,
#                               as task/cgroup from 24.05 needs to limit a job's memory at all)
#   cluster.sh down             stop and remove everything `up` made (idempotent)
#   cluster.sh status           sinfo -N -l and the cluster's processes
#   cluster.sh env              `export SLURM_CONF=...` lines to eval
#   cluster.sh restart-slurmd   restart every slurmd (re-reads plugstack.conf;
#                               rewrites it first if PLUGIN is set in the env)
#   cluster.sh drained          nodes that are drained/down/failing/not responding
#   cluster.sh exec NODE CMD..  run CMD inside NODE's namespaces (its /dev/shm)
set -euo pipefail
shopt -s extglob
umask 022

CLUSTER_DIR=${CLUSTER_DIR:-/run/pylaunch-cluster}
[[ $CLUSTER_DIR == ?*/ ]] && CLUSTER_DIR=${CLUSTER_DIR%/}
NODES=${NODES:-3}
PLUGIN_GIVEN=${PLUGIN+yes} # restart-slurmd rewrites plugstack.conf only then
PLUGIN=${PLUGIN:-}
PLUGIN_ARGS=${PLUGIN_ARGS:-}
TEST_USER=${TEST_USER:-pltest}

readonly MAX_NODES=16
# Fixed names and a fixed private range, used by nothing else on the machine:
# `down` can then clean up after a crashed run even when CLUSTER_DIR is gone.
readonly NS_PREFIX=plc-node     # network namespace of node i: plc-node<i>
readonly VETH_PREFIX=plc-v      # host end of node i's veth:   plc-v<i>
readonly BRIDGE=plc-br0
readonly NET=10.213.0           # /24; host = .1, node i = .(10+i)
readonly HOST_IP=$NET.1
# Not Slurm's default ports, so a system Slurm on the same host cannot collide.
readonly CTLD_PORT=16817 SLURMD_PORT=16818
readonly BOOT_TIMEOUT=90
readonly MARKER=.pylaunch-cluster

CONF=$CLUSTER_DIR/etc/slurm.conf
RUN=$CLUSTER_DIR/run
MUNGE_DIR=$CLUSTER_DIR/munge
LOG=$CLUSTER_DIR/log
export SLURM_CONF=$CONF

say() { echo "cluster.sh: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- checks

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

check_cluster_dir() {
	# The path goes into slurm.conf unquoted and `down` removes it: keep it plain.
	[[ $CLUSTER_DIR =~ ^/[A-Za-z0-9._+/-]*[A-Za-z0-9._+-]$ && $CLUSTER_DIR != *..* ]] ||
		die "CLUSTER_DIR must be a plain absolute path, not '$CLUSTER_DIR'"
	if [[ -d $CLUSTER_DIR && ! -e $CLUSTER_DIR/$MARKER && -n $(ls -A "$CLUSTER_DIR") ]]; then
		die "$CLUSTER_DIR exists and was not made by cluster.sh; refusing to use or remove it"
	fi
}

# slurmctld runs on the host under the host's short name.
check_hostname() {
	[[ ! $(hostname -s) =~ ^node[0-9]+$ ]] ||
		die "this host is called $(hostname -s), which clashes with the cluster's node names"
}

check_nodes() {
	if [[ ! $NODES =~ ^[0-9]{1,3}$ ]] || ((10#$NODES < 1 || 10#$NODES > MAX_NODES)); then
		die "NODES must be a number from 1 to $MAX_NODES, not '$NODES'"
	fi
	NODES=$((10#$NODES))
}

check_plugin() {
	[[ -z $PLUGIN ]] && return 0
	[[ $PLUGIN == /* ]] || die "PLUGIN must be an absolute path, not '$PLUGIN'"
	[[ -f $PLUGIN ]] || die "PLUGIN $PLUGIN does not exist"
	[[ $PLUGIN_ARGS != *$'\n'* ]] || die "PLUGIN_ARGS must be one line"
}

# Nodes recorded by `up`, so later subcommands need no NODES in their env.
recorded_nodes() {
	if [[ -r $RUN/nodes ]]; then cat "$RUN/nodes"; else echo 0; fi
}

require_running() {
	[[ -e $CLUSTER_DIR/$MARKER && -r $RUN/nodes ]] || die "no cluster in $CLUSTER_DIR (run 'up' first)"
	NODES=$(recorded_nodes)
}

# Serialises up/down/restart-slurmd of concurrent callers. Locking the script
# itself leaves no lock file behind; daemons never inherit fd 9 (see spawn).
take_lock() {
	exec 9<"${BASH_SOURCE[0]}"
	flock -w 600 9 || die "another cluster.sh is still running"
}

# ---------------------------------------------------------------- processes

alive() {
	[[ -r /proc/$1/status ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

pid_from() {
	local pid
	[[ -r $1 ]] && read -r pid <"$1" 2>/dev/null && [[ $pid =~ ^[0-9]+$ ]] && echo "$pid"
}

# Our daemons, found by command line as "PID KIND" lines: every one of them
# names CLUSTER_DIR in its arguments. Matching argv[0] too keeps us from ever
# killing a caller that merely has CLUSTER_DIR in its own command line.
our_daemons() {
	local p args
	for p in /proc/[0-9]*; do
		mapfile -d '' -t args 2>/dev/null <"$p/cmdline" || continue
		[[ ${#args[@]} -gt 0 ]] || continue
		if [[ ${args[0]} == "plc-holder $CLUSTER_DIR "* ]]; then
			echo "${p#/proc/} holder"
		elif [[ ${args[0]##*/} == @(slurmctld|slurmd) && " ${args[*]} " == *" $CONF "* ]]; then
			echo "${p#/proc/} ${args[0]##*/}"
		elif [[ ${args[0]##*/} == munged && " ${args[*]} " == *" --pid-file=$MUNGE_DIR/"* ]]; then
			echo "${p#/proc/} munged"
		fi
	done
}

# our_daemons' pids of the given kinds (all kinds but munged if none given).
daemon_pids() {
	local kinds=" ${*:-holder slurmctld slurmd} "
	our_daemons | while read -r pid kind; do
		[[ $kinds == *" $kind "* ]] && echo "$pid"
	done
	return 0
}

# Everything inside our network namespaces is ours: slurmd, slurmstepd, the
# holders and whatever the jobs started.
netns_pids() {
	local ns
	for ns in $(our_netns); do ip netns pids "$ns" 2>/dev/null || true; done
}

our_netns() { ip netns list 2>/dev/null | awk -v p="$NS_PREFIX" 'index($1, p) == 1 { print $1 }'; }

# Pid files alone are not trusted: a stale one may name a reused pid.
is_ours() {
	[[ " $(daemon_pids | tr '\n' ' ') " == *" $1 "* ]]
}

all_cluster_pids() {
	{
		daemon_pids
		netns_pids
	} | sort -un | while read -r p; do [[ $p != "$$" ]] && alive "$p" && echo "$p"; done
	return 0
}

# TERM, give them a moment to exit cleanly, then KILL.
stop_pids() {
	local sig pid left t
	for sig in TERM KILL; do
		[[ $# -eq 0 ]] && return 0
		kill "-$sig" "$@" 2>/dev/null || true
		for ((t = 0; t < 50; t++)); do
			left=()
			for pid in "$@"; do alive "$pid" && left+=("$pid"); done
			[[ ${#left[@]} -eq 0 ]] && return 0
			sleep 0.1
		done
		set -- "${left[@]}"
	done
	say "WARNING: processes still alive after SIGKILL: $*"
}

# Starts a daemon detached from us: it must not keep our stdout open (a caller
# capturing it would hang until the cluster stops), nor the lock fd, nor our
# session (a ^C in the caller's terminal must not kill half the cluster).
# SLURM_* from the caller's env (e.g. a test run inside a job) are dropped.
spawn() {
	local out=$1 v
	shift
	local clean=(env)
	for v in $(compgen -e); do [[ $v == SLURM_* ]] && clean+=(-u "$v"); done
	setsid "${clean[@]}" SLURM_CONF="$CONF" "$@" </dev/null >>"$out" 2>&1 9<&- &
}

# wait_until SECONDS DESCRIPTION COMMAND...
wait_until() {
	local timeout=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + timeout))
	until "$@"; do
		((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
		sleep 0.2
	done
}

# ---------------------------------------------------------------- deps

cmd_deps() {
	local pkgs=(slurmctld slurmd slurm-client munge iproute2 util-linux procps psmisc
		passwd hostname coreutils) missing=() p out
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q ' installed$' || missing+=("$p")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	export DEBIAN_FRONTEND=noninteractive
	out=$(mktemp)
	# Keep package scripts from starting the system's slurmd/slurmctld/munged
	# (we run our own); containers usually have this file already.
	local policy=/usr/sbin/policy-rc.d made_policy=
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
	fi
	# Only refresh the package lists when installing from them fails.
	if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$out" 2>&1; then
		if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$out" 2>&1; then
			cat "$out" >&2
			rm -f "$out"
			[[ -n $made_policy ]] && rm -f "$policy"
			die "could not install: ${missing[*]}"
		fi
	fi
	rm -f "$out"
	[[ -n $made_policy ]] && rm -f "$policy"
	say "installed: ${missing[*]}"
}

# ---------------------------------------------------------------- munge

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

ensure_munge() {
	munge_works && return 0
	local key=/etc/munge/munge.key
	if [[ ! -s $key ]]; then
		install -d -o munge -g munge -m 0700 /etc/munge
		if command -v mungekey >/dev/null; then
			mungekey --create --keyfile="$key" --force
		else
			dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
		fi
		chown munge:munge "$key"
		chmod 0400 "$key"
		say "created $key"
	fi
	if [[ ! -d /run/munge ]]; then
		install -d -o munge -g munge -m 0755 /run/munge
		touch "$RUN/made-run-munge"
	fi
	# No systemd here: start munged as its own user, like its unit file does.
	# Its own files go to CLUSTER_DIR (which also marks it as ours); the socket
	# stays where libmunge's clients look for it.
	install -d -o munge -g munge -m 0700 "$MUNGE_DIR"
	spawn "$LOG/munged.out" setpriv --reuid=munge --regid=munge --init-groups \
		/usr/sbin/munged --pid-file="$MUNGE_DIR/munged.pid" \
		--log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/munged.seed"
	wait_until 15 "munged to answer" munge_works
}

# Last, after every daemon that might still talk to it.
stop_our_munge() {
	local pids
	mapfile -t pids < <(daemon_pids munged)
	stop_pids "${pids[@]}"
	if [[ -e $RUN/made-run-munge ]]; then
		rm -rf /run/munge
	fi
	return 0
}

# ---------------------------------------------------------------- config

ensure_user() {
	id -u "$TEST_USER" >/dev/null 2>&1 || useradd -m -U -s /bin/bash "$TEST_USER"
}

node_ip() { echo "$NET.$((10 + $1))"; }

write_slurm_conf() {
	local i prolog_flags="PrologFlags=${PROLOG_FLAGS:-Alloc}" container=""
	# PROLOG_FLAGS=none: prologs run only as steps reach a node (pylaunch then stages directly).
	[[ ${PROLOG_FLAGS:-} == none ]] && prolog_flags="# no PrologFlags"
	if [[ ${JOB_CONTAINER:-} == tmpfs ]]; then
		container=$(container_type)
		# The plugin needs the job's extern step.
		if [[ ${PROLOG_FLAGS:-} == none ]]; then
			prolog_flags="PrologFlags=Contain"
		elif [[ $prolog_flags != *@(Contain|RunInJob)* ]]; then
			prolog_flags+=",Contain"
		fi
		write_job_container_conf
	fi
	local proctrack=proctrack/linuxproc task=task/none select_params="SelectTypeParameters=CR_Core"
	# A job without --mem then gets DefMemPerCPU, not the whole node: jobs still share nodes.
	[[ ${CR_MEMORY:-} == yes ]] &&
		select_params=$'SelectTypeParameters=CR_Core_Memory\nDefMemPerCPU=128'
	if [[ ${CGROUP:-} == v1 ]]; then
		proctrack=proctrack/cgroup task=task/cgroup
		prolog_flags=$(with_contain "$prolog_flags")
		write_cgroup_conf
	fi
	{
		cat <<-EOF
			# Written by tests/cluster/cluster.sh; removed by 'cluster.sh down'.
			ClusterName=pylaunch
			SlurmctldHost=$(hostname -s)($HOST_IP)
			SlurmctldPort=$CTLD_PORT
			SlurmdPort=$SLURMD_PORT
			SlurmUser=root
			SlurmdUser=root
			AuthType=auth/munge
			CredType=cred/munge
			SwitchType=switch/none
			MpiDefault=none
			ProctrackType=$proctrack
			TaskPlugin=$task
			JobAcctGatherType=jobacct_gather/none
			AccountingStorageType=accounting_storage/none
			JobCompType=jobcomp/none
			SelectType=select/cons_tres
			$select_params
			$prolog_flags
			$container
			ReturnToService=2
			# Nodes declare 4 CPUs whatever the host has.
			SlurmdParameters=config_overrides
			# Short enough for tests that cancel jobs.
			KillWait=5
			MailProg=/bin/true
			PlugStackConfig=$CLUSTER_DIR/etc/plugstack.conf
			StateSaveLocation=$CLUSTER_DIR/state
			SlurmctldPidFile=$RUN/slurmctld.pid
			SlurmctldLogFile=$LOG/slurmctld.log
			SlurmctldDebug=info
			SlurmdSpoolDir=$CLUSTER_DIR/spool/slurmd-%n
			SlurmdPidFile=$RUN/slurmd-%n.pid
			SlurmdLogFile=$LOG/slurmd-%n.log
			# debug: the plugin's info/verbose lines land in the slurmd logs.
			SlurmdDebug=debug
		EOF
		for ((i = 1; i <= NODES; i++)); do
			echo "NodeName=node$i NodeHostname=node$i NodeAddr=$(node_ip "$i") CPUs=4 RealMemory=2048 State=UNKNOWN"
		done
		echo "PartitionName=debug Nodes=node[1-$NODES] Default=YES MaxTime=INFINITE State=UP"
	} >"$CONF"
}

# The job's extern step (and its cgroup) exists when the prolog runs only with Contain.
with_contain() {
	if [[ $1 == "# no PrologFlags" ]]; then
		echo "PrologFlags=Contain"
	elif [[ $1 == *@(Contain|RunInJob)* ]]; then
		echo "$1"
	else
		echo "$1,Contain"
	fi
}

# cgroup v1 only: the machines this runs on mount v1 controllers with an empty v2 hierarchy.
write_cgroup_conf() {
	[[ -d /sys/fs/cgroup/memory && -d /sys/fs/cgroup/freezer ]] ||
		die "CGROUP=v1 needs the v1 memory and freezer hierarchies under /sys/fs/cgroup"
	cat >"$CLUSTER_DIR/etc/cgroup.conf" <<-EOF
		CgroupPlugin=cgroup/v1
		ConstrainRAMSpace=${CGROUP_RAM:-yes}
		ConstrainCores=no
		ConstrainDevices=no
	EOF
}

# Empty cgroups of our nodes left by slurmd (slurm_node<i> in each v1 hierarchy), deepest first.
remove_node_cgroups() {
	local d
	for d in /sys/fs/cgroup/*/slurm_node+([0-9]); do
		[[ -d $d ]] || continue
		find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	return 0
}

# 25.11 renamed job_container plugins to namespace plugins (the old key is still read, but names
# a plugin that no longer exists).
container_type() {
	local v
	v=$(slurmd -V | awk '{print $2}')
	if [[ $(printf '%s\n25.11\n' "$v" | sort -V | head -n1) == 25.11 ]]; then
		echo NamespaceType=namespace/tmpfs
	else
		echo JobContainerType=job_container/tmpfs
	fi
}

# One BasePath per node: the nodes share the machine's file system.
write_job_container_conf() {
	local i
	for ((i = 1; i <= NODES; i++)); do
		echo "NodeName=node$i AutoBasePath=true BasePath=$CLUSTER_DIR/container/node$i"
	done >"$CLUSTER_DIR/etc/job_container.conf"
}

# slurmstepd (steps, job prolog/epilog) re-reads this file every time; slurmd
# itself (slurm_spank_slurmd_init/exit) only when it starts: see restart-slurmd.
write_plugstack() {
	if [[ -n $PLUGIN ]]; then
		echo "required $PLUGIN${PLUGIN_ARGS:+ $PLUGIN_ARGS}" >"$CLUSTER_DIR/etc/plugstack.conf"
	else
		: >"$CLUSTER_DIR/etc/plugstack.conf"
	fi
}

# Each node sees this as /etc/hosts (bind mount in its own mount namespace),
# so node names and the host's name resolve there without touching the host.
write_node_hosts() {
	local i
	{
		echo "127.0.0.1 localhost"
		echo "$HOST_IP $(hostname -s)$([[ $(hostname) == "$(hostname -s)" ]] || echo " $(hostname)")"
		for ((i = 1; i <= NODES; i++)); do
			if [[ ${NODE_HOSTS:-} == misleading ]]; then
				echo "$NET.$((200 + i)) node$i"
			else
				echo "$(node_ip "$i") node$i"
			fi
		done
	} >"$CLUSTER_DIR/etc/hosts"
}

make_cluster_dir() {
	install -d -m 0755 "$CLUSTER_DIR" "$CLUSTER_DIR/etc" "$RUN" "$LOG" \
		"$CLUSTER_DIR/state" "$CLUSTER_DIR/spool"
	touch "$CLUSTER_DIR/$MARKER"
}

# slurmd would make its spool dir itself, but only after logging errors about
# it (and failing to cache its hwloc topology there).
make_spool_dirs() {
	local i
	for ((i = 1; i <= NODES; i++)); do install -d -m 0755 "$CLUSTER_DIR/spool/slurmd-node$i"; done
}

check_user_can_read() {
	runuser -u "$TEST_USER" -- test -r "$CONF" ||
		die "$TEST_USER cannot read $CONF: every directory above CLUSTER_DIR must be world-searchable"
	[[ -z $PLUGIN ]] || runuser -u "$TEST_USER" -- test -r "$PLUGIN" ||
		die "$TEST_USER cannot read $PLUGIN (srun loads it as the submitting user)"
}

# ---------------------------------------------------------------- network

check_address_range_free() {
	# Our range must be ours alone; traffic must never leave for a real network.
	if [[ -n $(ip -o -4 addr show to "$NET.0/24") || -n $(ip -4 route show "$NET.0/24") ]]; then
		die "$NET.0/24 is already used on this host: $(ip -o -4 addr show to "$NET.0/24")"
	fi
}

make_network() {
	local i ns veth
	check_address_range_free
	ip link add "$BRIDGE" type bridge stp_state 0 forward_delay 0
	# No IPv6 link-local chatter on our links: nothing but our own IPv4 /24.
	ip link set "$BRIDGE" addrgenmode none
	ip addr add "$HOST_IP/24" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	for ((i = 1; i <= NODES; i++)); do
		ns=$NS_PREFIX$i veth=$VETH_PREFIX$i
		ip netns add "$ns"
		ip link add "$veth" type veth peer name eth0 netns "$ns"
		ip link set "$veth" addrgenmode none
		ip link set "$veth" master "$BRIDGE" up
		ip -n "$ns" link set eth0 addrgenmode none
		ip -n "$ns" addr add "$(node_ip "$i")/24" dev eth0
		ip -n "$ns" link set eth0 up
		ip -n "$ns" link set lo up
	done
}

our_links() {
	ip -o link show 2>/dev/null | awk -F': ' -v v="$VETH_PREFIX" -v b="$BRIDGE" '
		{ sub(/@.*/, "", $2) } index($2, v) == 1 || $2 == b { print $2 }'
}

remove_network() {
	local ns link
	for ns in $(our_netns); do ip netns del "$ns" 2>/dev/null || true; done
	# Deleting a namespace takes its veth pair along, but asynchronously: delete
	# what is left ourselves and wait, so an `up` right after finds the names free.
	for link in $(our_links); do ip link del "$link" 2>/dev/null || true; done
	wait_until 10 "our network links to go" no_links_left
}

no_links_left() { [[ -z $(our_links) ]]; }

# ---------------------------------------------------------------- nodes

# A node's mount and UTS namespaces must outlive slurmd (restart-slurmd keeps
# the node's /dev/shm, like a real node), so a small "holder" process owns them
# and slurmd joins them. Not `ip netns exec`: it remounts /sys, which breaks
# slurmd's cgroup set-up.
start_holder() {
	local i=$1
	# shellcheck disable=SC2016 # expanded by the inner bash
	spawn "$LOG/holder-node$i.out" nsenter --net="/run/netns/$NS_PREFIX$i" -- \
		unshare --mount --uts --propagation private -- \
		bash -c 'set -e
			hostname "$1"
			mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
			mkdir -p /run/pylaunch
			mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run/pylaunch
			if [ -e /etc/hosts ]; then mount --bind "$2/etc/hosts" /etc/hosts; fi
			echo $$ >"$2/run/holder-$1.pid.tmp"
			mv "$2/run/holder-$1.pid.tmp" "$2/run/holder-$1.pid"
			exec -a "plc-holder $2 $1" sleep infinity' \
		holder "node$i" "$CLUSTER_DIR"
}

holder_pid() {
	local pid
	pid=$(pid_from "$RUN/holder-$1.pid") && alive "$pid" && is_ours "$pid" && echo "$pid"
}

holders_ready() {
	local i out
	for ((i = 1; i <= NODES; i++)); do
		out=$LOG/holder-node$i.out
		[[ -s $out ]] && die "could not make the namespaces of node$i: $(cat "$out")"
		[[ -e $RUN/holder-node$i.pid ]] || return 1
	done
}

start_holders() {
	local i
	for ((i = 1; i <= NODES; i++)); do start_holder "$i"; done
	wait_until 20 "the node namespaces" holders_ready
	lift_mntns_ids
}

# Linux 6.18 numbers namespaces from per-CPU batches and refuses to bind a job's mount namespace
# that numbers below slurmstepd's (the holder's): job_container/tmpfs then fails on one CPU
# ("ns base mount failed: Invalid argument"). mntns_ids.py says why and what it does.
lift_mntns_ids() {
	local i pids=()
	for ((i = 1; i <= NODES; i++)); do pids+=("$(holder_pid "node$i")"); done
	/usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/mntns_ids.py" "${pids[@]}" >&2 ||
		die "could not order the mount namespace ids after the nodes'"
}

start_slurmd() {
	local node=$1 hpid
	hpid=$(holder_pid "$node") || die "namespace holder of $node is gone"
	# --root: the holder's root, which is not the mount namespace's when run in a chroot.
	spawn "$LOG/slurmd-$node.out" nsenter --target "$hpid" --net --mount --uts --root --wd -- \
		slurmd -f "$CONF" -N "$node"
}

declare -A LOG_OFFSET=()

start_slurmds() {
	local i log
	for ((i = 1; i <= NODES; i++)); do
		log=$LOG/slurmd-node$i.log
		LOG_OFFSET[node$i]=$(stat -c %s "$log" 2>/dev/null || echo 0)
		start_slurmd "node$i"
	done
}

slurmd_pid() {
	local pid
	pid=$(pid_from "$RUN/slurmd-$1.pid") && alive "$pid" && is_ours "$pid" && echo "$pid"
}

start_slurmctld() {
	spawn "$LOG/slurmctld.out" slurmctld -f "$CONF"
	wait_until 30 "slurmctld to answer" ctld_answers
}

ctld_answers() {
	ctld_alive || die "slurmctld exited; $(tail_logs)"
	scontrol ping 2>/dev/null | grep -q 'is UP'
}

ctld_alive() {
	local pid
	pid=$(pid_from "$RUN/slurmctld.pid") || return 0 # not daemonised yet
	alive "$pid"
}

# "node state" for every node, e.g. "node1 idle"; empty if slurmctld is gone.
node_states() { sinfo -h -N -o '%N %t' 2>/dev/null || true; }

# Fail at once, not after BOOT_TIMEOUT, when a slurmd gave up (e.g. a required
# SPANK plugin that does not load).
# Looks only at what slurmd logged since start_slurmds, and only at slurmd's own
# lines (slurmstepd's carry a "[job.step]" prefix).
check_slurmds_alive() {
	local i pid new
	for ((i = 1; i <= NODES; i++)); do
		new=$(tail -c "+$((${LOG_OFFSET[node$i]:-0} + 1))" "$LOG/slurmd-node$i.log" 2>/dev/null) || true
		if grep -Eq '^\[[^]]*\] (fatal:|error: slurmd initialization failed)' <<<"$new"; then
			die "slurmd of node$i failed to start: $(grep -E '^\[[^]]*\] (error|fatal):' <<<"$new" | tail -n 5)"
		fi
		if pid=$(pid_from "$RUN/slurmd-node$i.pid") && ! alive "$pid"; then
			die "slurmd of node$i exited; $(tail_logs)"
		fi
	done
}

all_idle() {
	ctld_alive || die "slurmctld exited while the nodes were booting; $(tail_logs)"
	check_slurmds_alive
	[[ $(node_states | awk '$2 == "idle"' | wc -l) -eq $NODES ]]
}

wait_all_idle() {
	local deadline=$((SECONDS + BOOT_TIMEOUT))
	until all_idle; do
		if ((SECONDS >= deadline)); then
			say "nodes not idle after ${BOOT_TIMEOUT}s:"
			node_states >&2
			die "nodes did not come up; $(tail_logs)"
		fi
		sleep 0.3
	done
}

tail_logs() {
	local f
	echo "last log lines:"
	for f in "$LOG"/slurmctld.log "$LOG"/slurmd-node*.log "$LOG"/*.out; do
		[[ -s $f ]] || continue
		echo "==> $f <=="
		tail -n 15 "$f"
	done
}

# ---------------------------------------------------------------- up / down

on_up_exit() {
	local rc=$?
	trap - EXIT
	if ((rc != 0)); then
		say "up FAILED (exit $rc)${FAILED_AT:+ at: $FAILED_AT}; tearing down what was made"
		(set +e; teardown) || true
	fi
	exit "$rc"
}

cmd_up() {
	local t0=$SECONDS i
	check_nodes
	check_plugin
	check_cluster_dir
	check_hostname
	take_lock
	teardown
	set -E
	trap 'FAILED_AT="line $LINENO: $BASH_COMMAND"' ERR
	trap on_up_exit EXIT
	trap 'exit 130' INT TERM HUP

	make_cluster_dir
	echo "$NODES" >"$RUN/nodes"
	ensure_user
	ensure_munge
	write_slurm_conf
	write_plugstack
	write_node_hosts
	make_spool_dirs
	check_user_can_read
	make_network
	start_holders
	start_slurmctld
	start_slurmds
	wait_all_idle

	trap - EXIT ERR INT TERM HUP
	set +E
	say "up: $NODES nodes idle in $((SECONDS - t0))s; SLURM_CONF=$CONF"
}

teardown() {
	local pids
	# slurmctld first, so it does not react to the nodes going away.
	mapfile -t pids < <(daemon_pids slurmctld)
	stop_pids "${pids[@]}"
	# Again, for whatever a dying slurmstepd or job forked meanwhile.
	for _ in 1 2 3; do
		mapfile -t pids < <(all_cluster_pids)
		[[ ${#pids[@]} -eq 0 ]] && break
		stop_pids "${pids[@]}"
	done
	remove_network
	remove_node_cgroups
	stop_our_munge
	if [[ -e $CLUSTER_DIR/$MARKER ]]; then
		rm -rf "$CLUSTER_DIR"
	elif [[ -d $CLUSTER_DIR ]]; then
		rmdir "$CLUSTER_DIR" 2>/dev/null || say "left $CLUSTER_DIR alone: not made by cluster.sh"
	fi
}

cmd_down() {
	check_cluster_dir
	take_lock
	teardown
}

# ---------------------------------------------------------------- the rest

slurmd_start_times() {
	scontrol -o show node 2>/dev/null |
		sed -n 's/^NodeName=\([^ ]*\) .* SlurmdStartTime=\([^ ]*\) .*/\1 \2/p'
}

cmd_restart_slurmd() {
	local i pids=() pid before
	require_running
	take_lock
	if [[ -n $PLUGIN_GIVEN ]]; then
		check_plugin
		write_plugstack
	fi
	before=$(slurmd_start_times)
	for ((i = 1; i <= NODES; i++)); do
		if pid=$(slurmd_pid "node$i"); then pids+=("$pid"); fi
	done
	stop_pids "${pids[@]}"
	rm -f "$RUN"/slurmd-node*.pid
	# SlurmdStartTime has one-second resolution: make the new one differ.
	sleep 1
	start_slurmds
	local deadline=$((SECONDS + BOOT_TIMEOUT))
	until check_slurmds_alive && restarted_and_up "$before"; do
		((SECONDS < deadline)) || die "slurmd did not re-register; $(tail_logs)"
		sleep 0.3
	done
	say "restart-slurmd: $NODES slurmd restarted"
}

# Every node re-registered (new SlurmdStartTime) and none is down or draining.
restarted_and_up() {
	local now
	now=$(slurmd_start_times)
	[[ $(comm -12 <(sort <<<"$1") <(sort <<<"$now") | wc -l) -eq 0 ]] || return 1
	[[ $(grep -c . <<<"$now") -eq $NODES ]] || return 1
	[[ -z $(sinfo -h -N -o '%N %T %E' 2>/dev/null | bad_nodes) ]]
}

# Filters `sinfo -h -N -o '%N %T %E'` (long state names, then the reason):
# a trailing '*' means slurmctld cannot reach the node's slurmd.
bad_nodes() { awk 'tolower($2) ~ /drain|down|fail|\*$/'; }

cmd_drained() {
	local out
	require_running
	out=$(sinfo -h -N -o '%N %T %E' 2>&1) || die "sinfo failed: $out"
	bad_nodes <<<"$out"
}

cmd_status() {
	local pids
	if [[ ! -e $CLUSTER_DIR/$MARKER ]]; then
		echo "no cluster in $CLUSTER_DIR"
		return 0
	fi
	sinfo -N -l || true
	echo
	mapfile -t pids < <(
		all_cluster_pids
		daemon_pids munged
	)
	if [[ ${#pids[@]} -gt 0 ]]; then
		ps -o pid,ppid,user,etime,args -p "$(IFS=,; echo "${pids[*]}")"
	fi
}

cmd_env() {
	printf 'export SLURM_CONF=%q\n' "$CONF"
	printf 'export CLUSTER_DIR=%q\n' "$CLUSTER_DIR"
}

cmd_exec() {
	local node=${1:-} hpid
	[[ $# -ge 2 ]] || die "usage: cluster.sh exec NODE COMMAND [ARG...]"
	shift
	require_running
	hpid=$(holder_pid "$node") || die "no running node '$node'"
	exec nsenter --target "$hpid" --net --mount --uts --root --wd -- "$@"
}

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

main() {
	local cmd=${1:-}
	[[ $# -gt 0 ]] && shift
	case $cmd in
	deps) need_root; cmd_deps ;;
	up) need_root; cmd_up ;;
	down) need_root; cmd_down ;;
	restart-slurmd) need_root; cmd_restart_slurmd ;;
	status) cmd_status ;;
	env) cmd_env ;;
	drained) cmd_drained ;;
	exec) need_root; cmd_exec "$@" ;;
	-h | --help | help) usage ;;
	*) usage >&2; exit 2 ;;
	esac
}

main "$@"
