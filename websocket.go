package nestbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/coder/websocket"
)

// wsReadLimit bounds one message from the server. Output arrives in
// chunks far smaller; the bound only stops a broken server from making the
// client buffer without end.
const wsReadLimit = 16 << 20

// stdinChunk is the most input bytes sent in one message (exec stdin, PTY
// keystrokes): even as base64 inside JSON it stays below the 32 KiB that
// WebSocket servers accept by default.
const stdinChunk = 16 << 10

// dial opens a WebSocket to an API path. A refused handshake is decoded
// like any other error answer.
func (c *Client) dial(ctx context.Context, path string, q url.Values) (*websocket.Conn, error) {
	h := http.Header{}
	c.header(h)
	conn, resp, err := websocket.Dial(ctx, c.endpoint(path, q), &websocket.DialOptions{
		HTTPClient: c.hc,
		HTTPHeader: h,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols && resp.Body != nil {
			return nil, decodeError(resp)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	conn.SetReadLimit(wsReadLimit)
	return conn, nil
}

// writeMessage sends one StreamMessage as a text frame.
func writeMessage(ctx context.Context, conn *websocket.Conn, m StreamMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return conn.Write(ctx, websocket.MessageText, b)
}

// streamErr turns the error that ended a WebSocket read into the error a
// caller sees: the context's, or "connection lost".
func streamErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
		return fmt.Errorf("%s: connection closed before the process exited", what)
	}
	return fmt.Errorf("%s: %w", what, err)
}
