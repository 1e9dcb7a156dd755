// Package testfixtures is the one set of API objects the tests build groups
// from: a triad of members a, b and c (Primary, Secondary, Tertiary) reading
// the licence Secret <triad>-licenses, a backup pair reading <pair>-main and
// <pair>-backup, and signed licences for them. Controllers', builder and
// manifest tests all start from these, so a change to what a minimal valid
// group is happens in one place. Only tests import it.
package testfixtures

import (
	"crypto/ed25519"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/pkg/licensing"
)

// TriadMembers are the member names of Triad, in order.
var TriadMembers = []string{"a", "b", "c"}

// Triad is a minimal valid triad: members a (Primary), b (Secondary) and c
// (Tertiary), all reading the licence Secret TriadLicenseSecret(name).
func Triad(ns, name string) *licensehav1.LicenseTriad {
	return &licensehav1.LicenseTriad{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: licensehav1.LicenseTriadSpec{
			LicenseSecretRef: licensehav1.LocalObjectReference{Name: TriadLicenseSecret(name)},
			Members: []licensehav1.TriadMember{
				{Name: "a", Role: licensehav1.RolePrimary},
				{Name: "b", Role: licensehav1.RoleSecondary},
				{Name: "c", Role: licensehav1.RoleTertiary},
			},
		},
	}
}

// TriadLicenseSecret is the licence Secret Triad(ns, name) reads.
func TriadLicenseSecret(triad string) string { return triad + "-licenses" }

// Pair is a minimal valid backup pair (spec.mode left to its default): the
// main reads the licence Secret <name>-main, the backup <name>-backup.
func Pair(ns, name string) *licensehav1.LicenseBackupPair {
	return &licensehav1.LicenseBackupPair{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: licensehav1.LicenseBackupPairSpec{
			Main:   licensehav1.PairServer{LicenseSecretRef: licensehav1.LocalObjectReference{Name: PairLicenseSecret(name, licensehav1.SideMain)}},
			Backup: licensehav1.PairServer{LicenseSecretRef: licensehav1.LocalObjectReference{Name: PairLicenseSecret(name, licensehav1.SideBackup)}},
		},
	}
}

// PairLicenseSecret is the licence Secret of one side of Pair(ns, name).
func PairLicenseSecret(pair string, side licensehav1.PairSide) string {
	return pair + "-" + string(side)
}

// TB is what the fixtures need of a test: *testing.T, *testing.B and
// Ginkgo's GinkgoT() all have it.
type TB interface {
	Helper()
	Fatal(args ...any)
}

// SigningKey is a new licence signing key and its public key as PEM, the
// form the operator's trusted keys (controllers.Config.TrustedKeys) take.
func SigningKey(t TB) (priv ed25519.PrivateKey, trustedPEM []byte) {
	t.Helper()
	pub, priv, err := licensing.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	trustedPEM, err = licensing.EncodePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return priv, trustedPEM
}

// Licence is a licence for the group groupKey ("<namespace>/<name>"), signed
// by key: product LabelDesigner, 10 printers, valid from an hour ago for a
// year.
func Licence(key ed25519.PrivateKey, id, groupKey string, edition licensing.Edition) ([]byte, error) {
	now := time.Now()
	return licensing.Issue(key, licensing.License{
		ID: id, Product: "LabelDesigner", Edition: edition, Printers: 10, Group: groupKey,
		IssuedAt: now, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
	})
}

// LicenceSecret is a licence Secret holding one licence file, plant.lic.
func LicenceSecret(ns, name string, licence []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data:       map[string][]byte{"plant.lic": licence},
	}
}
