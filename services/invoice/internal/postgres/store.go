// Package postgres is the invoice service's PostgreSQL adapter: it loads and
// stores each order's invoice, refunds and credit notes, hands out gapless
// document numbers, and writes events to the outbox in the same transaction
// as the documents they announce. It must not decide anything the domain
// decides.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/invoice/internal/app"
	"github.com/shopmesh/shopmesh/services/invoice/internal/domain"
)

// querier is what loading needs: a pool or a transaction.
type querier interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Store owns its transactions.
type Store struct {
	pool *pgxpool.Pool
	ob   *outbox.Outbox
}

var (
	_ app.Billings = (*Store)(nil)
	_ app.Billings = (*TxStore)(nil)
	_ app.Numbers  = numbers{}
)

// NewStore returns a store on pool writing events to ob.
func NewStore(pool *pgxpool.Pool, ob *outbox.Outbox) *Store { return &Store{pool: pool, ob: ob} }

// InTx returns the store joined to tx, a message handler's inbox
// transaction: its writes commit or roll back with the inbox claim.
func (s *Store) InTx(tx pgx.Tx) *TxStore { return &TxStore{tx: tx, ob: s.ob} }

// Billing returns the billing of an order, or domain.ErrNotFound.
func (s *Store) Billing(ctx context.Context, orderID string) (*domain.Billing, error) {
	return load(ctx, s.pool, orderID, false)
}

// Update runs fn on the order's locked billing in a new transaction.
func (s *Store) Update(ctx context.Context, orderID string, fn app.UpdateFunc) error {
	return s.ob.WithTx(ctx, s.pool, func(tx pgx.Tx) error { return update(ctx, tx, s.ob, orderID, fn) })
}

// TxStore is the store inside a transaction it does not own.
type TxStore struct {
	tx pgx.Tx
	ob *outbox.Outbox
}

// Billing returns the billing of an order, or domain.ErrNotFound.
func (s *TxStore) Billing(ctx context.Context, orderID string) (*domain.Billing, error) {
	return load(ctx, s.tx, orderID, false)
}

// Update runs fn on the order's locked billing in the joined transaction.
func (s *TxStore) Update(ctx context.Context, orderID string, fn app.UpdateFunc) error {
	return update(ctx, s.tx, s.ob, orderID, fn)
}

// numbers takes document numbers inside a transaction.
type numbers struct{ tx pgx.Tx }

// Next increments the series' counter for the year in the transaction; the
// row stays locked until it ends, so concurrent issuers queue and a rollback
// leaves no gap.
func (n numbers) Next(ctx context.Context, series domain.Series, year int) (domain.Number, error) {
	var seq int64
	err := n.tx.QueryRow(ctx, `
		INSERT INTO number_sequences (series, year, last_value) VALUES ($1, $2, 1)
		ON CONFLICT (series, year) DO UPDATE SET last_value = number_sequences.last_value + 1
		RETURNING last_value`, string(series), year).Scan(&seq)
	if err != nil {
		return domain.Number{}, fmt.Errorf("next %s number for %d: %w", series, year, err)
	}
	return domain.Number{Series: series, Year: year, Seq: seq}, nil
}

func update(ctx context.Context, tx pgx.Tx, ob *outbox.Outbox, orderID string, fn app.UpdateFunc) error {
	cur, err := load(ctx, tx, orderID, true)
	if errors.Is(err, domain.ErrNotFound) {
		cur = nil
	} else if err != nil {
		return err
	}
	next, events, err := fn(cur, numbers{tx: tx})
	if err != nil {
		return err
	}
	// The new documents and the events in one round trip.
	batch := &pgx.Batch{}
	var labels []string
	if next != nil {
		if labels, err = queueSave(batch, next); err != nil {
			return err
		}
	}
	if err := ob.Queue(ctx, batch, events...); err != nil {
		return fmt.Errorf("publish events of order %s: %w", orderID, err)
	}
	results := tx.SendBatch(ctx, batch)
	for _, label := range labels {
		if _, err := results.Exec(); err != nil {
			results.Close() //nolint:errcheck // the first error is the one reported
			return fmt.Errorf("save %s: %w", label, err)
		}
	}
	if err := results.Close(); err != nil {
		return fmt.Errorf("publish events of order %s: %w", orderID, err)
	}
	return nil
}

type addressRow struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

type lineRow struct {
	ProductID      string `json:"product_id"`
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	Quantity       int    `json:"quantity"`
	UnitPriceMinor int64  `json:"unit_price_minor"`
	NetMinor       int64  `json:"net_minor"`
	VATMinor       int64  `json:"vat_minor"`
	GrossMinor     int64  `json:"gross_minor"`
}

func toLineRows(lines []domain.Line) []lineRow {
	rows := make([]lineRow, 0, len(lines))
	for _, l := range lines {
		rows = append(rows, lineRow{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity,
			UnitPriceMinor: l.UnitPrice.AmountMinor, NetMinor: l.Net.AmountMinor, VATMinor: l.VAT.AmountMinor,
			GrossMinor: l.Gross.AmountMinor})
	}
	return rows
}

func toLines(rows []lineRow, currency string) []domain.Line {
	lines := make([]domain.Line, 0, len(rows))
	for _, r := range rows {
		lines = append(lines, domain.Line{
			LineInput: domain.LineInput{ProductID: r.ProductID, SKU: r.SKU, Name: r.Name, Quantity: r.Quantity,
				UnitPrice: domain.Money{AmountMinor: r.UnitPriceMinor, Currency: currency}},
			Net:   domain.Money{AmountMinor: r.NetMinor, Currency: currency},
			VAT:   domain.Money{AmountMinor: r.VATMinor, Currency: currency},
			Gross: domain.Money{AmountMinor: r.GrossMinor, Currency: currency},
		})
	}
	return lines
}

// load reads the order's invoice, refunds and credit notes in one round
// trip. With lock it first takes the order's billing lock: a billing spans
// rows that may not exist yet, so a transaction lock on the order id
// serialises its writers instead of a row lock. Each statement of the batch
// runs after the previous one, so the reads see what the lock holder before
// committed.
func load(ctx context.Context, q querier, orderID string, lock bool) (_ *domain.Billing, err error) {
	b := &pgx.Batch{}
	if lock {
		b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, orderID)
	}
	b.Queue(`
		SELECT id, number_year, number_seq, user_id, payment_id, currency, net_minor, vat_minor, total_minor,
		       vat_rate_bp, billing_address, lines, issued_at
		FROM invoices WHERE order_id = $1`, orderID)
	b.Queue(`SELECT refund_id, payment_id, user_id, amount_minor, currency, reason, received_at
		FROM refunds WHERE order_id = $1 ORDER BY received_at, refund_id`, orderID)
	b.Queue(`SELECT id, number_year, number_seq, invoice_id, refund_id, amount_minor, currency, reason, issued_at
		FROM credit_notes WHERE order_id = $1 ORDER BY number_year, number_seq`, orderID)
	results := q.SendBatch(ctx, b)
	defer func() {
		if cerr := results.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("load billing of order %s: %w", orderID, cerr)
		}
	}()
	if lock {
		if _, err := results.Exec(); err != nil {
			return nil, fmt.Errorf("lock billing of order %s: %w", orderID, err)
		}
	}
	var (
		inv      domain.Invoice
		address  addressRow
		lines    []lineRow
		currency string
		net, vat int64
		total    int64
	)
	err = results.QueryRow().Scan(&inv.ID, &inv.Number.Year, &inv.Number.Seq, &inv.UserID,
		&inv.PaymentID, &currency, &net, &vat, &total, &inv.VATRate, &address, &lines, &inv.IssuedAt)
	var invoice *domain.Invoice
	switch {
	case err == nil:
		inv.OrderID, inv.Number.Series = orderID, domain.SeriesInvoice
		inv.Net, inv.VAT, inv.Total = domain.Money{AmountMinor: net, Currency: currency},
			domain.Money{AmountMinor: vat, Currency: currency}, domain.Money{AmountMinor: total, Currency: currency}
		inv.BillingAddress = domain.Address(address)
		inv.Lines = toLines(lines, currency)
		invoice = &inv
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("load invoice of order %s: %w", orderID, err)
	}

	userID := inv.UserID
	rows, err := results.Query()
	if err != nil {
		return nil, fmt.Errorf("load refunds of order %s: %w", orderID, err)
	}
	refunds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.Refund, error) {
		var r domain.Refund
		var refundUser string
		err := row.Scan(&r.RefundID, &r.PaymentID, &refundUser, &r.Amount.AmountMinor, &r.Amount.Currency, &r.Reason, &r.ReceivedAt)
		if userID == "" {
			userID = refundUser
		}
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("load refunds of order %s: %w", orderID, err)
	}
	if invoice == nil && len(refunds) == 0 {
		return nil, domain.ErrNotFound
	}

	rows, err = results.Query()
	if err != nil {
		return nil, fmt.Errorf("load credit notes of order %s: %w", orderID, err)
	}
	notes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.CreditNote, error) {
		n := domain.CreditNote{Number: domain.Number{Series: domain.SeriesCreditNote}}
		err := row.Scan(&n.ID, &n.Number.Year, &n.Number.Seq, &n.InvoiceID, &n.RefundID, &n.Amount.AmountMinor,
			&n.Amount.Currency, &n.Reason, &n.IssuedAt)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("load credit notes of order %s: %w", orderID, err)
	}
	return domain.FromDatabase(orderID, userID, invoice, refunds, notes)
}

// queueSave queues the inserts of the documents not stored yet (documents
// are immutable) and names each, in the order queued.
func queueSave(batch *pgx.Batch, b *domain.Billing) (labels []string, err error) {
	if inv, ok := b.Invoice(); ok {
		address, err := json.Marshal(addressRow(inv.BillingAddress))
		if err != nil {
			return nil, err
		}
		lines, err := json.Marshal(toLineRows(inv.Lines))
		if err != nil {
			return nil, err
		}
		batch.Queue(`
			INSERT INTO invoices (id, number, number_year, number_seq, order_id, user_id, payment_id, currency,
			                      net_minor, vat_minor, total_minor, vat_rate_bp, billing_address, lines, issued_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
			ON CONFLICT (id) DO NOTHING`,
			inv.ID, inv.Number.String(), inv.Number.Year, inv.Number.Seq, b.OrderID(), b.UserID(), inv.PaymentID,
			inv.Total.Currency, inv.Net.AmountMinor, inv.VAT.AmountMinor, inv.Total.AmountMinor, inv.VATRate,
			address, lines, inv.IssuedAt)
		labels = append(labels, "invoice "+inv.Number.String())
	}
	for _, r := range b.Refunds() {
		batch.Queue(`
			INSERT INTO refunds (refund_id, order_id, user_id, payment_id, amount_minor, currency, reason, received_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (refund_id) DO NOTHING`,
			r.RefundID, b.OrderID(), b.UserID(), r.PaymentID, r.Amount.AmountMinor, r.Amount.Currency, r.Reason,
			r.ReceivedAt)
		labels = append(labels, "refund "+r.RefundID)
	}
	for _, n := range b.CreditNotes() {
		batch.Queue(`
			INSERT INTO credit_notes (id, number, number_year, number_seq, invoice_id, order_id, refund_id,
			                          amount_minor, currency, reason, issued_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING`,
			n.ID, n.Number.String(), n.Number.Year, n.Number.Seq, n.InvoiceID, b.OrderID(), n.RefundID,
			n.Amount.AmountMinor, n.Amount.Currency, n.Reason, n.IssuedAt)
		labels = append(labels, "credit note "+n.Number.String())
	}
	return labels, nil
}
