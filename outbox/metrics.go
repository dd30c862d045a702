package outbox

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the library's Prometheus instruments. A nil *Metrics records
// nothing, so components work without a registry (unit tests, tools).
type Metrics struct {
	outboxPending   *prometheus.GaugeVec
	outboxOldestAge *prometheus.GaugeVec
	outboxHeldBack  *prometheus.GaugeVec
	relayPublished  *prometheus.CounterVec
	relayErrors     *prometheus.CounterVec
	relayUnroutable *prometheus.CounterVec
	relayLeader     *prometheus.GaugeVec
	relayHeldBack   *prometheus.CounterVec
	confirmSeconds  *prometheus.HistogramVec
	processed       *prometheus.CounterVec
	duplicates      *prometheus.CounterVec
	retries         *prometheus.CounterVec
	deadLetters     *prometheus.CounterVec
	deliveryLatency *prometheus.HistogramVec
	handlerDuration *prometheus.HistogramVec
	batchSize       *prometheus.HistogramVec
	batchSplits     *prometheus.CounterVec
	deadLetterGauge *prometheus.GaugeVec
}

// PublishedMetric counts the events a relay published, by service;
// AppliedMetric the messages consumers applied, by service, consumer and
// event type; HeldBackMetric the relay reads after which committed events
// waited that the read could not take, by service. Per request or per
// message they show what a change saved in messages and reads, as
// servicekit.RoundTripsMetric does in database requests.
const (
	PublishedMetric = "shopmesh_relay_published_total"
	AppliedMetric   = "shopmesh_inbox_processed_total"
	HeldBackMetric  = "shopmesh_relay_held_back_total"
)

// NewMetrics creates the instruments and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	latencyBuckets := []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 30}
	m := &Metrics{
		outboxPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shopmesh_outbox_pending", Help: "Committed outbox events not yet confirmed by the broker.",
		}, []string{"service"}),
		outboxOldestAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shopmesh_outbox_oldest_pending_age_seconds", Help: "Age of the oldest unsent outbox event.",
		}, []string{"service"}),
		outboxHeldBack: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shopmesh_outbox_held_back", Help: "Pending outbox events the relay cannot read yet: an older transaction in the service's database is still running.",
		}, []string{"service"}),
		relayPublished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: PublishedMetric, Help: "Outbox events published and confirmed by the broker.",
		}, []string{"service"}),
		relayErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopmesh_relay_errors_total", Help: "Failed relay batches, by kind.",
		}, []string{"service", "kind"}),
		relayUnroutable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopmesh_relay_unroutable_total", Help: "Events the broker returned as unroutable (kept in the outbox).",
		}, []string{"service"}),
		relayHeldBack: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: HeldBackMetric,
			Help: "Relay reads after which committed events waited that the read could not take: an older transaction in the database cluster, or in the service's database for the reads after two such ones in a row, was still running (or they committed just after the read).",
		}, []string{"service"}),
		relayLeader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shopmesh_relay_leader", Help: "1 when this relay holds the outbox lock, 0 when standing by.",
		}, []string{"service"}),
		confirmSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shopmesh_relay_confirm_latency_seconds", Help: "Time from publishing a batch to its last confirm.",
			Buckets: latencyBuckets,
		}, []string{"service"}),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: AppliedMetric, Help: "Messages applied by a consumer.",
		}, []string{"service", "consumer", "type"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopmesh_inbox_duplicates_total", Help: "Redelivered messages absorbed by the inbox.",
		}, []string{"service", "consumer"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopmesh_consumer_retries_total", Help: "Handler attempts that failed and were retried.",
		}, []string{"service", "consumer"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopmesh_dead_letters_total", Help: "Messages moved to the dead-letter store.",
		}, []string{"service", "consumer"}),
		deadLetterGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shopmesh_dead_letters_open", Help: "Dead letters neither replayed nor discarded.",
		}, []string{"service"}),
		deliveryLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shopmesh_delivery_latency_seconds", Help: "From the outbox insert to the consumer's commit.",
			Buckets: latencyBuckets,
		}, []string{"service", "consumer"}),
		handlerDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shopmesh_consumer_transaction_seconds", Help: "Duration of a consumer's inbox transaction.",
			Buckets: latencyBuckets,
		}, []string{"service", "consumer"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shopmesh_consumer_batch_messages", Help: "Messages committed per consumer transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}, []string{"service", "consumer"}),
		batchSplits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopmesh_consumer_batch_splits_total", Help: "Batches rolled back and applied again in parts after one message failed.",
		}, []string{"service", "consumer"}),
	}
	for _, c := range []prometheus.Collector{m.outboxPending, m.outboxOldestAge, m.outboxHeldBack, m.relayPublished, m.relayErrors,
		m.relayUnroutable, m.relayLeader, m.relayHeldBack, m.confirmSeconds, m.processed, m.duplicates, m.retries, m.deadLetters,
		m.deadLetterGauge, m.deliveryLatency, m.handlerDuration, m.batchSize, m.batchSplits} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) relayed(service string, n int) {
	if m != nil {
		m.relayPublished.WithLabelValues(service).Add(float64(n))
	}
}

func (m *Metrics) relayError(service string, err error) {
	if m == nil {
		return
	}
	kind := "database"
	switch {
	case errors.Is(err, ErrUnroutable):
		kind = "unroutable"
	case errors.Is(err, errBrokerConnection):
		kind = "broker"
	}
	m.relayErrors.WithLabelValues(service, kind).Inc()
}

func (m *Metrics) unroutable(service string) {
	if m != nil {
		m.relayUnroutable.WithLabelValues(service).Inc()
	}
}

func (m *Metrics) heldBack(service string) {
	if m != nil {
		m.relayHeldBack.WithLabelValues(service).Inc()
	}
}

func (m *Metrics) setLeader(service string, leader bool) {
	if m != nil {
		v := 0.0
		if leader {
			v = 1
		}
		m.relayLeader.WithLabelValues(service).Set(v)
	}
}

func (m *Metrics) confirmLatency(service string, d time.Duration) {
	if m != nil {
		m.confirmSeconds.WithLabelValues(service).Observe(d.Seconds())
	}
}

func (m *Metrics) setBacklog(service string, s Stats) {
	if m != nil {
		m.outboxPending.WithLabelValues(service).Set(float64(s.Pending))
		m.outboxOldestAge.WithLabelValues(service).Set(s.OldestPendingAge.Seconds())
		m.outboxHeldBack.WithLabelValues(service).Set(float64(s.HeldBack))
		m.deadLetterGauge.WithLabelValues(service).Set(float64(s.DeadLetters))
	}
}

// committed records one consumer transaction of n messages.
func (m *Metrics) committed(service, consumer string, n int, took time.Duration) {
	if m != nil {
		m.handlerDuration.WithLabelValues(service, consumer).Observe(took.Seconds())
		m.batchSize.WithLabelValues(service, consumer).Observe(float64(n))
	}
}

func (m *Metrics) batchSplit(service, consumer string) {
	if m != nil {
		m.batchSplits.WithLabelValues(service, consumer).Inc()
	}
}

func (m *Metrics) applied(service, consumer, typ string, committedAt time.Time) {
	if m == nil {
		return
	}
	m.processed.WithLabelValues(service, consumer, typ).Inc()
	if !committedAt.IsZero() {
		m.deliveryLatency.WithLabelValues(service, consumer).Observe(time.Since(committedAt).Seconds())
	}
}

func (m *Metrics) duplicate(service, consumer string) {
	if m != nil {
		m.duplicates.WithLabelValues(service, consumer).Inc()
	}
}

func (m *Metrics) retry(service, consumer string) {
	if m != nil {
		m.retries.WithLabelValues(service, consumer).Inc()
	}
}

func (m *Metrics) deadLettered(service, consumer string) {
	if m != nil {
		m.deadLetters.WithLabelValues(service, consumer).Inc()
	}
}
