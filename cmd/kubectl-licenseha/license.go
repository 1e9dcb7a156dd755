package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/licenseha/licenseha/pkg/licensing"
)

func newLicenseCmd(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "license",
		Short: "Create signing keys, issue, package and verify licence files",
	}
	cmd.AddCommand(newKeygenCmd(o), newIssueCmd(o), newSecretCmd(o), newVerifyCmd(o))
	return cmd
}

func newKeygenCmd(o *Options) *cobra.Command {
	return keygenCmd(o, "Create an ed25519 signing key pair (private key to sign licences, public key for the servers)",
		"licenseha-signing", "private key", "Key %s: private key in %s (keep it secret), public key in %s\n")
}

// keygenCmd is a `keygen` command: it writes an ed25519 key pair into the
// files of --private-key (what the private key is called in its usage,
// default base.key) and --public-key (base.pub) and prints done with the
// key id and both files.
func keygenCmd(o *Options, short, base, what, done string) *cobra.Command {
	var privPath, pubPath string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keyID, err := writeKeyPair(privPath, pubPath, force)
			if err != nil {
				return err
			}
			fmt.Fprintf(o.Out, done, keyID, privPath, pubPath)
			return nil
		},
	}
	cmd.Flags().StringVar(&privPath, "private-key", base+".key", "file to write the "+what+" to (mode 0600)")
	cmd.Flags().StringVar(&pubPath, "public-key", base+".pub", "file to write the public key to")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite existing files")
	return cmd
}

// writeNew writes a file, refusing to replace an existing one unless force.
func writeNew(path string, data []byte, mode os.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; use --force to replace it", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func newIssueCmd(o *Options) *cobra.Command {
	var (
		keyPath, out, edition, notBefore, notAfter string
		validFor                                   time.Duration
		l                                          licensing.License
	)
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Sign a licence file for a group",
		Example: `  kubectl licenseha license issue --private-key licenseha-signing.key \
    --id LIC-0001 --product LabelDesigner --edition Enterprise --printers 50 \
    --group printing/plant-a --valid-for 8760h -o LIC-0001.lic`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			priv, err := readKeyFlag("--private-key", keyPath, licensing.ParsePrivateKey)
			if err != nil {
				return err
			}
			now := time.Now().UTC().Truncate(time.Second)
			l.Edition, l.IssuedAt, l.NotBefore = licensing.Edition(edition), now, now
			if notBefore != "" {
				if l.NotBefore, err = parseTime(notBefore); err != nil {
					return fmt.Errorf("--not-before: %w", err)
				}
			}
			l.NotAfter = l.NotBefore.Add(validFor)
			if notAfter != "" {
				if l.NotAfter, err = parseTime(notAfter); err != nil {
					return fmt.Errorf("--not-after: %w", err)
				}
			}
			data, err := licensing.Issue(priv, l)
			if err != nil {
				return err
			}
			if out == "-" {
				_, err = o.Out.Write(data)
				return err
			}
			if out == "" {
				out = l.ID + licensing.FileSuffix
			}
			if err := os.WriteFile(out, data, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(o.ErrOut, "Licence %s for group %s written to %s\n", l.ID, l.Group, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyPath, "private-key", "licenseha-signing.key", "private signing key (PEM)")
	f.StringVar(&l.ID, "id", "", "licence id, e.g. LIC-0001")
	f.StringVar(&l.Product, "product", "", "licensed product")
	f.StringVar(&edition, "edition", string(licensing.EditionEnterprise), fmt.Sprintf("edition, one of %v", licensing.Editions))
	f.IntVar(&l.Printers, "printers", 0, "printer seats")
	f.StringVar(&l.Group, "group", "", "group the licence is bound to, <namespace>/<name> of a LicenseTriad or LicenseBackupPair")
	f.StringVar(&l.Licensee, "licensee", "", "customer name (informational)")
	f.StringVar(&notBefore, "not-before", "", "start of validity, RFC 3339 or YYYY-MM-DD (default: now)")
	f.StringVar(&notAfter, "not-after", "", "end of validity, RFC 3339 or YYYY-MM-DD (default: --not-before plus --valid-for)")
	f.DurationVar(&validFor, "valid-for", 365*24*time.Hour, "validity when --not-after is not given")
	f.StringVarP(&out, "output", "o", "", `file to write ("-" for standard output; default <id>.lic)`)
	for _, req := range []string{"id", "product", "printers", "group"} {
		_ = cmd.MarkFlagRequired(req)
	}
	return cmd
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor YYYY-MM-DD", s)
	}
	return t, nil
}

// secretKeyRE is what Kubernetes allows as a Secret data key.
var secretKeyRE = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

func newSecretCmd(o *Options) *cobra.Command {
	var group, name string
	cmd := &cobra.Command{
		Use:     "secret FILE.lic...",
		Short:   "Print a Secret manifest holding licence files, for kubectl apply -f -",
		Example: `  kubectl licenseha license secret --group printing/plant-a LIC-0001.lic | kubectl apply -f -`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			if err := licensing.ValidateGroup(group); err != nil {
				return fmt.Errorf("--group: %w", err)
			}
			ns, groupName, _ := strings.Cut(group, "/")
			if flagNS := *o.ConfigFlags.Namespace; flagNS != "" && flagNS != ns {
				return fmt.Errorf("--namespace %s differs from the group's namespace %s", flagNS, ns)
			}
			if name == "" {
				name = groupName + "-licenses"
			}
			data := map[string][]byte{}
			for _, path := range files {
				key := filepath.Base(path)
				if !strings.HasSuffix(key, licensing.FileSuffix) || !secretKeyRE.MatchString(key) {
					return fmt.Errorf("%s: the file name must end in %s and use only letters, digits, '-', '_' and '.'", path, licensing.FileSuffix)
				}
				if _, dup := data[key]; dup {
					return fmt.Errorf("two files are named %s", key)
				}
				content, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				l, _, err := licensing.Parse(content)
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				if l.Group != group {
					return fmt.Errorf("%s: licence %s is bound to group %s, not %s", path, l.ID, l.Group, group)
				}
				data[key] = content
			}
			secret := corev1.Secret{
				TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
					Labels: map[string]string{"app.kubernetes.io/part-of": "licenseha"}},
				Type: corev1.SecretTypeOpaque,
				Data: data,
			}
			out, err := yaml.Marshal(secret)
			if err != nil {
				return err
			}
			_, err = o.Out.Write(out)
			return err
		},
	}
	cmd.Flags().StringVar(&group, "group", "", "group the licences belong to, <namespace>/<name> (required)")
	cmd.Flags().StringVar(&name, "name", "", "Secret name (default <group name>-licenses)")
	_ = cmd.MarkFlagRequired("group")
	return cmd
}

func newVerifyCmd(o *Options) *cobra.Command {
	var keysPath, group, at string
	cmd := &cobra.Command{
		Use:   "verify FILE.lic...",
		Short: "Check licence files against trusted public keys, a group and a time",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			keys, err := readKeyFlag("--trusted-keys", keysPath, licensing.ParseTrustedKeys)
			if err != nil {
				return err
			}
			now := time.Now()
			if at != "" {
				if now, err = parseTime(at); err != nil {
					return fmt.Errorf("--at: %w", err)
				}
			}
			tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FILE\tID\tPRODUCT\tEDITION\tPRINTERS\tGROUP\tNOT AFTER\tRESULT")
			refused := 0
			for _, path := range files {
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				g := group
				if g == "" { // without --group, check the licence against its own group
					if l, _, err := licensing.Parse(data); err == nil {
						g = l.Group
					}
				}
				l, err := licensing.Verify(data, keys, g, now)
				result := "valid"
				if err != nil {
					result = err.Error()
					refused++
				}
				if l == nil {
					l = &licensing.License{}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", path, l.ID, l.Product, l.Edition, l.Printers, l.Group,
					l.NotAfter.Format(time.DateOnly), result)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if refused > 0 {
				return fmt.Errorf("%d of %d licence files refused", refused, len(files))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keysPath, "trusted-keys", "licenseha-signing.pub", "PEM file with the trusted public keys")
	cmd.Flags().StringVar(&group, "group", "", "group the licences must be bound to (default: any)")
	cmd.Flags().StringVar(&at, "at", "", "check validity at this time, RFC 3339 or YYYY-MM-DD (default: now)")
	return cmd
}

// writeKeyPair creates an ed25519 key pair and writes the private key (mode
// 0600) and the public key in PEM; it returns the key id.
func writeKeyPair(privPath, pubPath string, force bool) (string, error) {
	pub, priv, err := licensing.GenerateKey()
	if err != nil {
		return "", err
	}
	privPEM, err := licensing.EncodePrivateKey(priv)
	if err != nil {
		return "", err
	}
	pubPEM, err := licensing.EncodePublicKey(pub)
	if err != nil {
		return "", err
	}
	if err := writeNew(privPath, privPEM, 0o600, force); err != nil {
		return "", err
	}
	if err := writeNew(pubPath, pubPEM, 0o644, force); err != nil {
		return "", err
	}
	return licensing.KeyID(pub), nil
}
