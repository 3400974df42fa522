package server_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/resp"
	"github.com/ringcache/ringcache/server/servertest"
)

// rawConn dials addr for raw RESP conversations.
func rawConn(t *testing.T, addr string) *resp.Conn {
	t.Helper()
	c, err := resp.Dial(addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends args on c and reads n replies.
func roundTrip(t *testing.T, c *resp.Conn, n int, args ...string) []resp.Value {
	t.Helper()
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	c.WriteCommand(bs...)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	return readN(t, c, n)
}

func readN(t *testing.T, c *resp.Conn, n int) []resp.Value {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	out := make([]resp.Value, n)
	for i := range out {
		v, err := c.ReadReply()
		if err != nil {
			t.Fatalf("reply %d of %d: %v", i+1, n, err)
		}
		out[i] = v
	}
	return out
}

// pubsubStep is one step of a pub/sub conversation: a command on the
// subscriber (sub) or the publisher, and how many replies the subscriber
// then reads (the publisher reads its one reply).
type pubsubStep struct {
	publisher bool
	args      []string
	replies   int // read on the subscriber
}

// TestPubSubMatchesRedis runs the same conversations against redis-server
// and a node, in RESP2 and RESP3, and compares every reply and message.
func TestPubSubMatchesRedis(t *testing.T) {
	rdb := servertest.StartRedis(t)
	node := servertest.Start(t)
	sub := func(args ...string) pubsubStep { return pubsubStep{args: args, replies: 1} }
	subN := func(n int, args ...string) pubsubStep { return pubsubStep{args: args, replies: n} }
	pub := func(n int, args ...string) pubsubStep { return pubsubStep{publisher: true, args: args, replies: n} }
	steps := []pubsubStep{
		subN(2, "SUBSCRIBE", "news", "sport"),
		subN(1, "SUBSCRIBE", "news"), // already subscribed: the count stays
		subN(1, "PSUBSCRIBE", "n*"),
		pub(2, "PUBLISH", "news", "hello"), // a message and a pmessage
		pub(1, "PUBLISH", "sport", "goal"),
		pub(0, "PUBLISH", "weather", "rain"),
		pub(0, "PUBSUB", "NUMSUB", "news", "sport", "none"),
		pub(0, "PUBSUB", "NUMPAT"),
		pub(0, "PUBSUB", "CHANNELS", "s*"),
		sub("PING"),
		sub("PING", "hi"),
		sub("GET", "x"),
		subN(1, "SSUBSCRIBE", "{s}one"),
		pub(1, "SPUBLISH", "{s}one", "sharded"),
		pub(0, "PUBSUB", "SHARDNUMSUB", "{s}one"),
		pub(0, "PUBSUB", "SHARDCHANNELS"),
		subN(1, "SUNSUBSCRIBE"),
		subN(1, "UNSUBSCRIBE", "sport"),
		subN(1, "PUNSUBSCRIBE"),
		subN(1, "UNSUBSCRIBE"),
		subN(1, "UNSUBSCRIBE"), // none left: a null channel
		sub("PING"),
		sub("SET", "x", "1"),
	}
	for _, proto := range []string{"2", "3"} {
		t.Run("RESP"+proto, func(t *testing.T) {
			type side struct{ sub, pub *resp.Conn }
			open := func(addr string) side {
				s := side{rawConn(t, addr), rawConn(t, addr)}
				roundTrip(t, s.sub, 1, "HELLO", proto)
				return s
			}
			want, got := open(rdb.Options().Addr), open(node.Addr)
			for _, st := range steps {
				run := func(s side) []resp.Value {
					if st.publisher {
						out := roundTrip(t, s.pub, 1, st.args...)
						return append(out, readN(t, s.sub, st.replies)...)
					}
					return roundTrip(t, s.sub, st.replies, st.args...)
				}
				w, g := run(want), run(got)
				if !reflect.DeepEqual(w, g) {
					t.Fatalf("%v:\n redis: %s\n  node: %s", st.args, show(w), show(g))
				}
			}
		})
	}
}

func show(vs []resp.Value) string {
	var b strings.Builder
	for _, v := range vs {
		b.Write(resp.Append(nil, v, 3))
	}
	return fmt.Sprintf("%q", b.String())
}

// TestPubSubAcrossNodes checks that a message published on any node of a
// cluster reaches the subscribers of every node, and that sharded
// channels work for cluster clients (MOVED) and plain ones (served where
// they are).
func TestPubSubAcrossNodes(t *testing.T) {
	c := servertest.StartClusterRF(t, 3, 2)
	ctx := context.Background()
	var subs []*redis.PubSub
	for _, n := range c.Alive() {
		ps := n.Client().Subscribe(ctx, "events")
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ps.Close() })
		subs = append(subs, ps)
	}
	for i, n := range c.Alive() {
		msg := fmt.Sprintf("from node %d", i)
		if err := n.Client().Publish(ctx, "events", msg).Err(); err != nil {
			t.Fatal(err)
		}
		for j, ps := range subs {
			m, err := receive(ps, 5*time.Second)
			if err != nil || m.Payload != msg {
				t.Fatalf("subscriber on node %d, publish on node %d: got %v %v; want %q", j, i, m, err, msg)
			}
		}
	}

	// Sharded, through a cluster client: subscribed on the slot's
	// primary, published there.
	cc := c.Client()
	channel := "orders:{7}"
	ss := cc.SSubscribe(ctx, channel)
	t.Cleanup(func() { ss.Close() })
	if _, err := ss.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cc.SPublish(ctx, channel, "sharded").Err(); err != nil {
		t.Fatal(err)
	}
	if m, err := receive(ss, 5*time.Second); err != nil || m.Payload != "sharded" {
		t.Fatalf("sharded message through a cluster client: %v %v", m, err)
	}

	// A cluster-aware raw connection to a node that is not the channel's
	// primary gets MOVED, as from Redis 7.
	slot := cluster.KeySlot([]byte(channel))
	var other *servertest.Node
	for _, n := range c.Alive() {
		if p, ok, _, _ := n.Replicator.Route(slot); !ok && p.ID != "" {
			other = n
			break
		}
	}
	if other == nil {
		t.Fatal("no node that is not the primary")
	}
	aware := rawConn(t, other.Addr)
	roundTrip(t, aware, 1, "CLUSTER", "SLOTS") // asking for the topology makes it a cluster client
	if v := roundTrip(t, aware, 1, "SSUBSCRIBE", channel)[0]; v.Kind != resp.KindError || !strings.HasPrefix(v.Str, fmt.Sprintf("MOVED %d ", slot)) {
		t.Fatalf("SSUBSCRIBE on a non-primary, cluster-aware: %s; want MOVED %d", show([]resp.Value{v}), slot)
	}
	if v := roundTrip(t, aware, 1, "SSUBSCRIBE", "a{1}", "b{2}")[0]; v.Kind != resp.KindError || !strings.HasPrefix(v.Str, "CROSSSLOT") {
		t.Fatalf("SSUBSCRIBE across slots: %s; want CROSSSLOT", show([]resp.Value{v}))
	}

	// A plain client on that node subscribes there, and a plain client on
	// yet another node publishes: forwarded to the primary, delivered
	// everywhere.
	plain := other.Client().SSubscribe(ctx, channel)
	t.Cleanup(func() { plain.Close() })
	if _, err := plain.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Alive() {
		if n == other {
			continue
		}
		if err := n.Client().SPublish(ctx, channel, "to plain").Err(); err != nil {
			t.Fatal(err)
		}
		break
	}
	if m, err := receive(plain, 5*time.Second); err != nil || m.Payload != "to plain" {
		t.Fatalf("sharded message to a plain subscriber on a non-primary: %v %v", m, err)
	}
}

func receive(ps *redis.PubSub, timeout time.Duration) (*redis.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		v, err := ps.Receive(ctx)
		if err != nil {
			return nil, err
		}
		if m, ok := v.(*redis.Message); ok {
			return m, nil
		}
	}
}

// TestSlowSubscriberIsCutOff checks that a subscriber that does not read
// is disconnected at its output buffer limit instead of growing the
// node's memory, and that the node goes on serving.
func TestSlowSubscriberIsCutOff(t *testing.T) {
	node := servertest.Start(t)
	ctx := context.Background()
	rdb := node.Client()
	if err := rdb.ConfigSet(ctx, "client-output-buffer-limit", "pubsub 1mb 256kb 60").Err(); err != nil {
		t.Fatal(err)
	}
	slow := rawConn(t, node.Addr)
	roundTrip(t, slow, 1, "SUBSCRIBE", "firehose")
	// It never reads again. Publish well past the limit and what the
	// sockets' buffers hold.
	payload := strings.Repeat("x", 64<<10)
	cut := false
	for i := 0; i < 2000 && !cut; i++ {
		n, err := rdb.Publish(ctx, "firehose", payload).Result()
		if err != nil {
			t.Fatal(err)
		}
		cut = n == 0
	}
	if !cut {
		t.Fatal("the slow subscriber still receives after 128 MB published")
	}
	info, err := rdb.Info(ctx, "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, "client_output_buffer_limit_disconnections:1") {
		t.Fatalf("INFO stats does not count the disconnection:\n%s", info)
	}
	if v, err := rdb.Get(ctx, "x").Result(); err != redis.Nil {
		t.Fatalf("GET after: %q %v", v, err)
	}
	if got, err := rdb.ConfigGet(ctx, "client-output-buffer-limit").Result(); err != nil || !strings.Contains(got["client-output-buffer-limit"], "pubsub 1048576 262144 60") {
		t.Fatalf("CONFIG GET client-output-buffer-limit: %v %v", got, err)
	}
}
