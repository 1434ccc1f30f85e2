package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ldm-project/ldm/ldm"
)

// outpaintFlags are --outpaint SIDE=PIXELS,… and --outpaint-fill.
type outpaintFlags struct {
	sides, fill string
}

func (o *outpaintFlags) register(f *pflag.FlagSet) {
	f.StringVar(&o.sides, "outpaint", "", "extend --init-image and inpaint the new area: left=N,right=N,top=N,bottom=N (any of them, pixels)")
	f.StringVar(&o.fill, "outpaint-fill", "", "what the new area starts from: "+strings.Join(ldm.OutpaintFills, ", ")+" (default stretch: the edge pixels)")
}

// apply sets req.Outpaint from the flags.
func (o *outpaintFlags) apply(req *ldm.Request) error {
	if o.sides == "" {
		if o.fill != "" {
			return fmt.Errorf("--outpaint-fill: needs --outpaint")
		}
		return nil
	}
	op := &ldm.Outpaint{Fill: o.fill}
	for _, part := range strings.Split(o.sides, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if !ok || err != nil {
			return fmt.Errorf("--outpaint: %q is not SIDE=PIXELS (left=64,right=64,top=0,bottom=0)", part)
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "left":
			op.Left = n
		case "right":
			op.Right = n
		case "top":
			op.Top = n
		case "bottom":
			op.Bottom = n
		default:
			return fmt.Errorf("--outpaint: side %q: use left, right, top or bottom", k)
		}
	}
	req.Outpaint = op
	return nil
}

func init() { flagOfField["outpaint"] = "--outpaint" }
