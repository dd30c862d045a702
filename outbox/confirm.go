package outbox

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// confirmChannel is a channel in confirm mode that publishes with mandatory
// routing: the relay keeps one per broker connection, the operator's replays
// open one per command.
type confirmChannel struct {
	ch      *amqp.Channel
	out     *batchConn // the connection's writes, held per batch; nil sends each publish alone
	returns chan amqp.Return
}

// newConfirmChannel opens a confirm-mode channel on conn. Returns arrive
// before the confirm of the same message and the library's reader blocks on
// a full return channel, so it holds a whole batch of up to maxBatch. out,
// when not nil, is conn's batchConn: a batch's publishes then leave in one
// write.
func newConfirmChannel(conn *amqp.Connection, out *batchConn, maxBatch int) (*confirmChannel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, err
	}
	return &confirmChannel{ch: ch, out: out, returns: ch.NotifyReturn(make(chan amqp.Return, maxBatch+16))}, nil
}

// publish sends msgs to exchange, msgs[i] with routing key keys[i], and waits
// up to timeout for every confirm. It returns the index of the first message
// the broker returned as unroutable, or -1, with that return. A failed send
// or confirm wraps errBrokerConnection: the channel is no longer usable.
func (c *confirmChannel) publish(ctx context.Context, exchange string, keys []string, msgs []amqp.Publishing,
	timeout time.Duration) (int, amqp.Return, error) {
	for len(c.returns) > 0 { // left over from an earlier failed batch
		<-c.returns
	}
	confirms, err := c.send(ctx, exchange, keys, msgs)
	if err != nil {
		return -1, amqp.Return{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for i, dc := range confirms {
		ok, err := dc.WaitContext(wctx)
		if err != nil {
			return -1, amqp.Return{}, fmt.Errorf("%w: confirm of %s: %v", errBrokerConnection, msgs[i].MessageId, err)
		}
		if !ok {
			return -1, amqp.Return{}, fmt.Errorf("broker nacked %s", msgs[i].MessageId)
		}
	}
	// Every return was queued before its confirm was processed.
	if len(c.returns) == 0 {
		return -1, amqp.Return{}, nil
	}
	index := make(map[string]int, len(msgs))
	for i, m := range msgs {
		if _, seen := index[m.MessageId]; !seen {
			index[m.MessageId] = i
		}
	}
	first, firstRet := -1, amqp.Return{}
	for len(c.returns) > 0 {
		ret := <-c.returns
		if i, ok := index[ret.MessageId]; ok && (first == -1 || i < first) {
			first, firstRet = i, ret
		}
	}
	return first, firstRet, nil
}

// operatorPublisher is a short-lived broker connection of an operator
// command (dead-letter and history replays).
type operatorPublisher struct {
	conn *amqp.Connection
	cc   *confirmChannel
}

func openOperatorPublisher(amqpURL string, maxBatch int) (*operatorPublisher, error) {
	var out *batchConn
	conn, err := amqp.DialConfig(amqpURL, amqp.Config{Dial: batchingDial(amqp.DefaultDial(HandshakeTimeout), &out),
		Properties: amqp.Table{"connection_name": "shopmesh-operator"}})
	if err != nil {
		return nil, err
	}
	cc, err := newConfirmChannel(conn, out, maxBatch)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &operatorPublisher{conn: conn, cc: cc}, nil
}

// toQueue publishes msgs straight to one queue through the default exchange
// and waits (up to 30s) for every confirm; a message no queue took is an
// ErrUnroutable error.
func (p *operatorPublisher) toQueue(ctx context.Context, queue string, msgs []amqp.Publishing) error {
	keys := make([]string, len(msgs))
	for i := range keys {
		keys[i] = queue
	}
	returned, ret, err := p.cc.publish(ctx, "", keys, msgs, 30*time.Second)
	if err != nil {
		return err
	}
	if returned >= 0 {
		return fmt.Errorf("%w: queue %s (%s)", ErrUnroutable, queue, ret.ReplyText)
	}
	return nil
}

func (p *operatorPublisher) close() { p.conn.Close() }

// send publishes msgs, batched into one write when the channel can, and
// returns their confirmations.
func (c *confirmChannel) send(ctx context.Context, exchange string, keys []string,
	msgs []amqp.Publishing) ([]*amqp.DeferredConfirmation, error) {
	if c.out != nil {
		c.out.hold()
	}
	confirms := make([]*amqp.DeferredConfirmation, 0, len(msgs))
	var err error
	for i, m := range msgs {
		dc, perr := c.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, keys[i], true, false, m)
		if perr != nil {
			err = fmt.Errorf("%w: publish %s: %v", errBrokerConnection, m.MessageId, perr)
			break
		}
		confirms = append(confirms, dc)
	}
	if c.out != nil {
		if rerr := c.out.release(); rerr != nil && err == nil {
			err = fmt.Errorf("%w: send %d publishes: %v", errBrokerConnection, len(confirms), rerr)
		}
	}
	return confirms, err
}
