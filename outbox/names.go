package outbox

import "regexp"

var serviceName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// ExchangeName is the topic exchange a service's events are published to;
// the routing key is the event type.
func ExchangeName(service string) string { return "shopmesh." + service }

// QueueName is the quorum queue of one consumer of a service.
func QueueName(service, consumer string) string { return "shopmesh." + service + "." + consumer }

// deadLetterExchange and deadLetterQueue receive what the broker itself
// dead-letters from a consumer queue (delivery limit reached).
func deadLetterExchange(queue string) string { return queue + ".dlx" }
func deadLetterQueue(queue string) string    { return queue + ".dlq" }
