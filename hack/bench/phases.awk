# The phases of vc-cri's calls, from its log: for each call that logs a
# phase line (pkg/tracing: "Pod sandbox phases" total_ms=... cni_ms=...,
# "Container create phases", "Container start phases", "Exec phases",
# "ExecSync phases"), the median, min and max of each phase over the
# calls that succeeded (a line with err= is left out), in the order the
# phases ran.
#
#   awk -f hack/bench/phases.awk [-v from=MARK -v to=MARK] DAEMON-LOG...
#
# With from, only the lines after a line that contains MARK count, until
# one that contains to: the scripts mark the steps they time, so that
# warm-up and parallel pods stay out. POSIX awk (Debian's is mawk).

from != "" && index($0, from) { on = 1; next }
to != "" && index($0, to) { on = 0; next }
from != "" && !on { next }

match($0, /\] "[A-Za-z ]+ phases"/) {
	if ($0 ~ / err="/) next
	call = substr($0, RSTART + 3, RLENGTH - 4)
	sub(/ phases$/, "", call)
	if (!(call in ncalls)) order[++ncall] = call
	ncalls[call]++
	for (i = 1; i <= NF; i++) {
		if ($i !~ /^[a-z_]+_ms=[0-9.]+$/) continue
		eq = index($i, "=")
		ph = substr($i, 1, eq - 4)
		k = call SUBSEP ph
		if (!(k in cnt)) phase[call, ++nphase[call]] = ph
		val[k, ++cnt[k]] = substr($i, eq + 1) + 0
	}
}

END {
	if (ncall == 0) {
		print "no phase lines (vc-cri logs them at --log-level 2 and above)"
		exit
	}
	printf "%-34s %9s %9s %9s %6s\n", "call / phase (ms)", "median", "min", "max", "calls"
	for (c = 1; c <= ncall; c++) {
		call = order[c]
		printf "%s\n", call
		for (p = 1; p <= nphase[call]; p++) {
			ph = phase[call, p]
			k = call SUBSEP ph
			n = cnt[k]
			for (i = 1; i <= n; i++) s[i] = val[k, i]
			for (i = 2; i <= n; i++) { # insertion sort: a few samples
				v = s[i]
				for (j = i - 1; j >= 1 && s[j] > v; j--) s[j + 1] = s[j]
				s[j + 1] = v
			}
			med = (n % 2) ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2
			printf "  %-32s %9.1f %9.1f %9.1f %6d\n", ph, med, s[1], s[n], n
		}
	}
}
