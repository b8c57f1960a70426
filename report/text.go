package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

func writeText(w io.Writer, r Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", title(r))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "METRIC\tREQUESTS (B/C)\tERRORS (B/C)\tBASELINE\tCANARY\tRATIO\tINTERVAL\tP\tCRITERION\tVERDICT\tREASON")
	for _, x := range rows(r) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.name, x.requests, x.errors, x.baseline, x.canary,
			x.ratio, x.interval, x.p, x.threshold, x.verdict, x.reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Cluster != nil {
		fmt.Fprintf(&b, "\ncluster: %s", r.Cluster.Line())
	}
	fmt.Fprintf(&b, "\nverdict: %s (%s)\n", strings.ToUpper(string(r.Verdict)), r.Reason)
	verb := "action"
	if r.DryRun {
		verb = "would"
	}
	fmt.Fprintf(&b, "%s: %s: %s\n", verb, r.Decision.Action, r.Decision.Effect)
	if r.DryRun {
		fmt.Fprintln(&b, "dry run: nothing was changed")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
