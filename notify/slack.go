package notify

import (
	"fmt"
	"strings"
)

// slackMessage is the body of a Slack incoming webhook: blocks for Slack, and text, which Slack
// shows in notifications and which Slack-compatible receivers without blocks (Mattermost's
// incoming webhooks) show alone.
type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type   string      `json:"type"`
	Text   *slackText  `json:"text,omitempty"`
	Fields []slackText `json:"fields,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// headline is the emoji and the words that open a notice of each kind.
func headline(n Notice) (emoji, words string) {
	switch n.Kind {
	case KindStarted:
		return ":rocket:", "Canary started"
	case KindStep:
		if n.Steps > 0 {
			return ":arrow_forward:", fmt.Sprintf("Canary advanced to step %d/%d", n.Step, n.Steps)
		}
		return ":arrow_forward:", "Canary advanced a step"
	case KindApprovalNeeded:
		return ":raised_hand:", "Canary needs approval"
	case KindPromoted:
		return ":white_check_mark:", "Canary promoted"
	case KindRolledBack:
		return ":rewind:", "Canary rolled back"
	case KindInconclusive:
		return ":grey_question:", "Canary inconclusive"
	case KindStopped:
		return ":octagonal_sign:", "Canary stopped"
	case KindCommand:
		return ":speech_balloon:", "Command received"
	}
	return ":bell:", "Canary " + string(n.Kind)
}

// newSlackMessage lays a notice out as a Slack message. Every string from the cluster is
// escaped: Slack reads <!channel>, <@user> and <url|text> in any text, so a reason could
// otherwise page a channel or disguise a link.
func newSlackMessage(n Notice) slackMessage {
	n = n.bounded()
	emoji, words := headline(n)
	words = slackEscape(words)
	release := slackEscape(n.Namespace + "/" + n.Policy)
	if n.Canary != "" {
		release += " " + slackEscape(n.Canary)
	}
	by := ""
	if n.By != "" {
		by = " by " + slackEscape(n.By)
	}
	title := fmt.Sprintf("%s *%s*%s: %s", emoji, words, by, release)

	step := "-"
	if n.Steps > 0 {
		step = fmt.Sprintf("%d/%d", n.Step, n.Steps)
	}
	fields := []slackText{
		mrkdwn("*Namespace*\n" + orDash(n.Namespace)),
		mrkdwn("*Policy*\n" + orDash(n.Policy)),
		mrkdwn("*Versions*\n" + orDash(n.Baseline) + " → " + orDash(n.Canary)),
		mrkdwn("*Step*\n" + step),
	}
	if n.Phase != "" {
		fields = append(fields, mrkdwn("*Phase*\n"+slackEscape(n.Phase)))
	}
	blocks := []slackBlock{
		{Type: "section", Text: ptr(mrkdwn(title))},
		{Type: "section", Fields: fields},
	}
	text := fmt.Sprintf("%s%s: %s", words, by, release)
	if n.Reason != "" {
		reason := slackEscape(n.Reason)
		blocks = append(blocks, slackBlock{Type: "section", Text: ptr(mrkdwn(reason))})
		text += ": " + reason
	}
	return slackMessage{Text: text, Blocks: blocks}
}

func mrkdwn(s string) slackText { return slackText{Type: "mrkdwn", Text: s} }

func ptr[T any](v T) *T { return &v }

// orDash is s escaped, or "-" when empty: Slack refuses a field with no text.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return slackEscape(s)
}

// slackEscape escapes the three characters Slack's message formatting reserves
// (https://api.slack.com/reference/surfaces/formatting#escaping).
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
