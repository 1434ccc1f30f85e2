package app

// ComfyUI's websocket, /ws?clientId=: the server's status to every client,
// a prompt's events to the client that queued it (its client_id), preview
// images as binary frames. It uses github.com/coder/websocket: maintained,
// context-aware, no dependencies of its own, and its Accept works on gin's
// hijackable writer.

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"
)

// comfyHub holds the websocket clients.
type comfyHub struct {
	c       *comfyState
	mu      sync.Mutex
	clients map[string]map[*comfyConn]bool
}

type comfyConn struct {
	out chan comfyFrame
}

type comfyFrame struct {
	binary bool
	data   []byte
}

func newComfyHub(c *comfyState) *comfyHub {
	return &comfyHub{c: c, clients: map[string]map[*comfyConn]bool{}}
}

func (h *comfyHub) add(id string, cc *comfyConn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.clients[id] == nil {
		h.clients[id] = map[*comfyConn]bool{}
	}
	h.clients[id][cc] = true
}

func (h *comfyHub) remove(id string, cc *comfyConn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.clients[id], cc)
	if len(h.clients[id]) == 0 {
		delete(h.clients, id)
	}
}

// send queues a frame for a client ("" every client). A client too slow to
// keep up loses previews first; a text message waits a little.
func (h *comfyHub) send(id string, f comfyFrame) {
	h.mu.Lock()
	var conns []*comfyConn
	for cid, set := range h.clients {
		if id == "" || cid == id {
			for cc := range set {
				conns = append(conns, cc)
			}
		}
	}
	h.mu.Unlock()
	for _, cc := range conns {
		if f.binary {
			select {
			case cc.out <- f:
			default:
			}
			continue
		}
		select {
		case cc.out <- f:
		case <-time.After(2 * time.Second):
		}
	}
}

func comfyMessage(typ string, data any) []byte {
	b, _ := json.Marshal(gin.H{"type": typ, "data": data})
	return b
}

func (h *comfyHub) statusData() gin.H {
	return gin.H{"status": gin.H{"exec_info": gin.H{"queue_remaining": h.c.queueRemaining()}}}
}

func (h *comfyHub) broadcastStatus() {
	h.send("", comfyFrame{data: comfyMessage("status", h.statusData())})
}

// ws upgrades the request. The guard and auth middlewares have run (Host,
// credentials); a websocket GET from a page of another origin is refused
// here too, as a state-changing request would be (cross-site websocket
// hijacking).
func (c *comfyState) ws(ctx *gin.Context) {
	r := ctx.Request
	if o := r.Header.Get("Origin"); o != "" && !c.s.policy.corsAllowed(o) && !c.s.policy.sameOrigin(o, r.Host) {
		c.s.fail(ctx, http.StatusForbidden, "", fmt.Errorf("websocket from origin %q refused: allow the origin with --cors-allow-origins", o))
		return
	}
	id := ctx.Query("clientId")
	if id == "" {
		id = newID()
	}
	rc := http.NewResponseController(ctx.Writer)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	conn, err := websocket.Accept(ctx.Writer, r, &websocket.AcceptOptions{InsecureSkipVerify: true}) // origin checked above
	if err != nil {
		return // Accept has answered
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	cc := &comfyConn{out: make(chan comfyFrame, 64)}
	st := c.hub.statusData()
	st["sid"] = id
	cc.out <- comfyFrame{data: comfyMessage("status", st)}
	c.hub.add(id, cc)
	defer c.hub.remove(id, cc)
	wctx := conn.CloseRead(context.Background()) // client messages are not used; closes with the connection
	for {
		select {
		case f := <-cc.out:
			typ := websocket.MessageText
			if f.binary {
				typ = websocket.MessageBinary
			}
			wc, cancel := context.WithTimeout(wctx, 10*time.Second)
			err := conn.Write(wc, typ, f.data)
			cancel()
			if err != nil {
				return
			}
		case <-wctx.Done():
			return
		case <-c.s.quit:
			conn.Close(websocket.StatusGoingAway, "server shutting down")
			return
		}
	}
}

// event records a prompt message in its history and sends it to its client.
func (c *comfyState) event(p *comfyPrompt, typ string, data gin.H, keep bool) {
	if keep {
		p.mu.Lock()
		p.messages = append(p.messages, [2]any{typ, data})
		p.mu.Unlock()
	}
	if p.clientID != "" {
		c.hub.send(p.clientID, comfyFrame{data: comfyMessage(typ, data)})
	}
}

// watch follows a prompt's job and speaks ComfyUI's execution messages.
func (c *comfyState) watch(p *comfyPrompt) {
	j := p.job
	pl := p.plan
	sent := map[string]bool{}
	executing := func(node string) {
		if sent[node] {
			return
		}
		sent[node] = true
		c.event(p, "executing", gin.H{"node": node, "display_node": node, "prompt_id": p.id}, false)
	}
	i := 0
	for {
		evs, changed, final := j.eventsSince(i)
		i += len(evs)
		for _, ev := range evs {
			switch ev.name {
			case "running":
				c.hub.broadcastStatus()
				c.event(p, "execution_start", gin.H{"prompt_id": p.id, "timestamp": unixMillis()}, true)
				c.event(p, "execution_cached", gin.H{"nodes": []string{}, "prompt_id": p.id, "timestamp": unixMillis()}, true)
				// The loaders and encoders run before the sampler's first step.
				for _, n := range pl.order {
					if n == pl.sampler {
						break
					}
					executing(n)
				}
				executing(pl.sampler)
			case "progress":
				var pr struct {
					Step  int `json:"step"`
					Total int `json:"total"`
				}
				_ = json.Unmarshal(ev.data, &pr)
				c.event(p, "progress", gin.H{"value": pr.Step, "max": pr.Total, "prompt_id": p.id, "node": pl.sampler}, false)
			case "preview":
				var pv struct {
					Image string `json:"image"`
				}
				if ev.data == nil || json.Unmarshal(ev.data, &pv) != nil {
					continue
				}
				png, err := base64.StdEncoding.DecodeString(pv.Image)
				if err != nil || p.clientID == "" {
					continue
				}
				// ComfyUI's binary frame: event 1 (PREVIEW_IMAGE), format 2 (PNG), the image.
				frame := make([]byte, 8, 8+len(png))
				binary.BigEndian.PutUint32(frame[0:], 1)
				binary.BigEndian.PutUint32(frame[4:], 2)
				c.hub.send(p.clientID, comfyFrame{binary: true, data: append(frame, png...)})
			}
		}
		if final {
			break
		}
		<-changed
	}
	sn := j.snapshot()
	outputs := map[string]any{}
	status := "success"
	if sn.State == Succeeded {
		outputs = c.finishOutputs(p, sn)
	} else {
		status = "error"
	}
	// The history holds the outputs before the client hears of the end.
	p.mu.Lock()
	p.outputs, p.status, p.done = outputs, status, true
	p.mu.Unlock()
	switch {
	case sn.State == Succeeded:
		after := false
		for _, n := range pl.order {
			if n == pl.sampler {
				after = true
				continue
			}
			if !after {
				continue
			}
			executing(n)
			if o, ok := outputs[n]; ok {
				c.event(p, "executed", gin.H{"node": n, "display_node": n, "output": o, "prompt_id": p.id}, false)
			}
		}
		c.event(p, "execution_success", gin.H{"prompt_id": p.id, "timestamp": unixMillis()}, true)
	case sn.Code == "cancelled" || sn.Code == "shutdown":
		c.event(p, "execution_interrupted", gin.H{"prompt_id": p.id, "node_id": pl.sampler, "node_type": p.prompt[pl.sampler].ClassType,
			"executed": []string{}, "timestamp": unixMillis()}, true)
	default:
		msg := ""
		if sn.Err != nil {
			msg = sn.Err.Error()
		}
		c.event(p, "execution_error", gin.H{"prompt_id": p.id, "node_id": pl.sampler, "node_type": p.prompt[pl.sampler].ClassType,
			"executed": []string{}, "exception_message": msg, "exception_type": sn.Code, "traceback": []string{},
			"current_inputs": gin.H{}, "current_outputs": gin.H{}, "timestamp": unixMillis()}, true)
	}
	c.event(p, "executing", gin.H{"node": nil, "display_node": nil, "prompt_id": p.id}, false)
	c.hub.broadcastStatus()
}
