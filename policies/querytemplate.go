package policies

import (
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"
)

// templateFuncs are the functions a query template may call: none of them loops, and none
// returns more than it is given.
var templateFuncs = map[string]bool{
	"and": true, "or": true, "not": true, "len": true,
	"eq": true, "ne": true, "lt": true, "le": true, "gt": true, "ge": true,
}

// checkTemplate refuses what could make rendering a query template unbounded in time or size.
func checkTemplate(t *template.Template) error {
	if len(t.Templates()) > 1 {
		return fmt.Errorf("define and block are not allowed: a query is one template")
	}
	if t.Tree == nil || t.Tree.Root == nil {
		return nil
	}
	c := templateChecker{tree: t.Tree}
	return c.node(t.Tree.Root)
}

type templateChecker struct {
	tree *parse.Tree
}

// refuse is the error for node n, located as text/template locates its own ("1:5: ...").
func (c templateChecker) refuse(n parse.Node, format string, a ...any) error {
	loc, _ := c.tree.ErrorContext(n)
	loc = strings.TrimPrefix(loc, c.tree.ParseName+":")
	return fmt.Errorf("%s: %s", loc, fmt.Sprintf(format, a...))
}

func (c templateChecker) node(n parse.Node) error {
	switch n := n.(type) {
	case *parse.ListNode:
		for _, x := range n.Nodes {
			if err := c.node(x); err != nil {
				return err
			}
		}
		return nil
	case *parse.TextNode, *parse.CommentNode:
		return nil
	case *parse.ActionNode:
		return c.pipe(n.Pipe)
	case *parse.IfNode:
		return c.branch(&n.BranchNode)
	case *parse.WithNode:
		return c.branch(&n.BranchNode)
	case *parse.RangeNode:
		return c.refuse(n, "range is not allowed: a query template has nothing to range over")
	case *parse.TemplateNode:
		return c.refuse(n, "template is not allowed: a query is one template")
	default:
		return c.refuse(n, "%s is not allowed in a query template", n)
	}
}

func (c templateChecker) branch(b *parse.BranchNode) error {
	if err := c.pipe(b.Pipe); err != nil {
		return err
	}
	if err := c.node(b.List); err != nil {
		return err
	}
	if b.ElseList != nil {
		return c.node(b.ElseList)
	}
	return nil
}

func (c templateChecker) pipe(p *parse.PipeNode) error {
	if p == nil {
		return nil
	}
	for _, cmd := range p.Cmds {
		for _, arg := range cmd.Args {
			if err := c.arg(arg); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c templateChecker) arg(n parse.Node) error {
	switch n := n.(type) {
	case *parse.IdentifierNode:
		if !templateFuncs[n.Ident] {
			return c.refuse(n, "function %q is not allowed: a query template may use the variables, if, with, and, or, not, len, eq, ne, lt, le, gt and ge", n.Ident)
		}
	case *parse.PipeNode:
		return c.pipe(n)
	case *parse.ChainNode:
		return c.arg(n.Node)
	}
	return nil
}
