package main

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/user"
)

// newUserCommand holds operator commands about accounts.
func newUserCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage accounts (create the first administrator)"}
	var email, password, name string
	createAdmin := &cobra.Command{
		Use:   "create-admin --email EMAIL --password PASSWORD [--name NAME]",
		Short: "Create an administrator, or promote an existing account (idempotent)",
		Long: `create-admin connects to the user database, applies its migrations, and makes
sure an active administrator with the email and password exists: a new account
is registered (publishing user.registered.v1 through the outbox, forwarded by
the user service's relay), an existing one is promoted and given the password.
A deactivated account is refused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if email == "" || password == "" {
				return errors.New("--email and --password are required")
			}
			ctx := cmd.Context()
			dbURL, _, err := a.env.serviceURLs(user.Name)
			if err != nil {
				return err
			}
			pool, err := pgxpool.New(ctx, dbURL)
			if err != nil {
				return fmt.Errorf("user database: %w", err)
			}
			defer pool.Close()
			if err := outbox.Migrate(ctx, pool, a.logger); err != nil {
				return err
			}
			if err := migrateService(ctx, pool, user.Name, user.Migrations, a.logger); err != nil {
				return err
			}
			res, err := user.CreateAdmin(ctx, pool, user.AdminRequest{Email: email, Password: password, Name: name})
			if err != nil {
				return err
			}
			switch {
			case res.Created:
				fmt.Fprintf(a.stdout, "created administrator %s (%s)\n", res.Email, res.UserID)
			case res.Promoted:
				fmt.Fprintf(a.stdout, "promoted %s (%s) to administrator\n", res.Email, res.UserID)
			default:
				fmt.Fprintf(a.stdout, "%s (%s) is already an administrator\n", res.Email, res.UserID)
			}
			if res.PasswordReset && !res.Created {
				fmt.Fprintln(a.stdout, "its password was set to the one given")
			}
			return nil
		},
	}
	createAdmin.Flags().StringVar(&email, "email", "", "login email (required)")
	createAdmin.Flags().StringVar(&password, "password", "", "password, 10 to 128 characters (required)")
	createAdmin.Flags().StringVar(&name, "name", "", `display name of a new account (default "Administrator")`)
	cmd.AddCommand(createAdmin)
	return cmd
}
