package builder

import (
	"slices"
	"testing"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// clientAccessCases are the shapes spec.clientAccess takes.
func clientAccessCases() []struct {
	name   string
	access *licensehav1.ClientAccessSpec
	// tokenSecret/tokenKey: ClientTokenSecret; tlsSecret: ClientTLSSecretName;
	// certManager: UsesCertManager; flags: clientAccessFlags.
	tokenSecret, tokenKey, tlsSecret string
	certManager                      bool
	flags                            []string
} {
	tokenFlag := "--client-token-file=/etc/licenseha/client-tokens/tokens"
	certFlags := []string{"--tls-cert-file=/etc/licenseha/client-tls/tls.crt", "--tls-key-file=/etc/licenseha/client-tls/tls.key"}
	cm := &licensehav1.CertManagerSpec{IssuerRef: licensehav1.CertManagerIssuerReference{Name: "ca"}}
	return []struct {
		name                             string
		access                           *licensehav1.ClientAccessSpec
		tokenSecret, tokenKey, tlsSecret string
		certManager                      bool
		flags                            []string
	}{
		{name: "unset"},
		{name: "empty", access: &licensehav1.ClientAccessSpec{}},
		{name: "tokens, default key",
			access:      &licensehav1.ClientAccessSpec{TokenSecretRef: &licensehav1.TokenSecretReference{Name: "tok"}},
			tokenSecret: "tok", tokenKey: "tokens", flags: []string{tokenFlag}},
		{name: "tokens, own key",
			access:      &licensehav1.ClientAccessSpec{TokenSecretRef: &licensehav1.TokenSecretReference{Name: "tok", Key: "clients.txt"}},
			tokenSecret: "tok", tokenKey: "clients.txt", flags: []string{tokenFlag}},
		{name: "TLS from the user's Secret",
			access:    &licensehav1.ClientAccessSpec{TLS: &licensehav1.ClientTLSSpec{SecretRef: &licensehav1.LocalObjectReference{Name: "own-tls"}}},
			tlsSecret: "own-tls", flags: certFlags},
		{name: "TLS from cert-manager, into <group>-client-tls",
			access:    &licensehav1.ClientAccessSpec{TLS: &licensehav1.ClientTLSSpec{CertManager: cm}},
			tlsSecret: "plant-client-tls", certManager: true, flags: certFlags},
		{name: "an empty TLS section: no TLS",
			access: &licensehav1.ClientAccessSpec{TLS: &licensehav1.ClientTLSSpec{}}},
		{name: "tokens and TLS: token flag first",
			access: &licensehav1.ClientAccessSpec{TokenSecretRef: &licensehav1.TokenSecretReference{Name: "tok"},
				TLS: &licensehav1.ClientTLSSpec{CertManager: cm}},
			tokenSecret: "tok", tokenKey: "tokens", tlsSecret: "plant-client-tls", certManager: true,
			flags: append([]string{tokenFlag}, certFlags...)},
	}
}

// TestClientAccessHelpers: which Secrets, keys and server flags each shape
// of spec.clientAccess yields, for both kinds.
func TestClientAccessHelpers(t *testing.T) {
	for _, tc := range clientAccessCases() {
		for _, kind := range []string{"triad", "pair"} {
			t.Run(tc.name+"/"+kind, func(t *testing.T) {
				var g Group
				if kind == "triad" {
					tr := fixtureTriad()
					tr.Spec.ClientAccess = tc.access
					g = FromTriad(tr)
				} else {
					p := fixturePair()
					p.Spec.ClientAccess = tc.access
					g = FromPair(p)
				}
				if name, key := ClientTokenSecret(g); name != tc.tokenSecret || key != tc.tokenKey {
					t.Errorf("token Secret %q key %q, want %q %q", name, key, tc.tokenSecret, tc.tokenKey)
				}
				if got := ClientTLSSecretName(g); got != tc.tlsSecret {
					t.Errorf("TLS Secret %q, want %q", got, tc.tlsSecret)
				}
				if got := UsesCertManager(g); got != tc.certManager {
					t.Errorf("uses cert-manager %v, want %v", got, tc.certManager)
				}
				if got := clientAccessFlags(g); !slices.Equal(got, tc.flags) {
					t.Errorf("flags %q, want %q", got, tc.flags)
				}
				if got := Certificate(g, Options{}) != nil; got != tc.certManager {
					t.Errorf("a Certificate: %v, want %v", got, tc.certManager)
				}
				// The pod mounts what the flags name, and only then.
				pod := Pod(g, g.Members[0], Options{Image: opImage})
				if got, want := mountAt(pod, "client-tokens") != "", tc.tokenSecret != ""; got != want {
					t.Errorf("client-tokens mounted: %v, want %v", got, want)
				}
				if got, want := mountAt(pod, "client-tls") != "", tc.tlsSecret != ""; got != want {
					t.Errorf("client-tls mounted: %v, want %v", got, want)
				}
			})
		}
	}
}

// TestClientAccessVolumes: the credentials' volumes project only the keys
// the server reads, under fixed names, read-only.
func TestClientAccessVolumes(t *testing.T) {
	for _, tc := range clientAccessCases() {
		t.Run(tc.name, func(t *testing.T) {
			tr := fixtureTriad()
			tr.Spec.ClientAccess = tc.access
			vols, mounts := clientAccessVolumes(FromTriad(tr))
			var want, got []string
			if tc.tokenSecret != "" {
				want = append(want, "client-tokens "+tc.tokenSecret+":"+tc.tokenKey+"=tokens at /etc/licenseha/client-tokens")
			}
			if tc.tlsSecret != "" {
				want = append(want, "client-tls "+tc.tlsSecret+":tls.crt=tls.crt,tls.key=tls.key at /etc/licenseha/client-tls")
			}
			if len(vols) != len(mounts) {
				t.Fatalf("%d volumes, %d mounts", len(vols), len(mounts))
			}
			for i := range vols {
				if *vols[i].Secret.DefaultMode != 0o440 || !mounts[i].ReadOnly || mounts[i].Name != vols[i].Name {
					t.Errorf("volume %+v mount %+v: want mode 0440, read-only", vols[i], mounts[i])
				}
				got = append(got, vols[i].Name+" "+secretVolume(&vols[i])+" at "+mounts[i].MountPath)
			}
			if !slices.Equal(got, want) {
				t.Errorf("volumes\n got %q\nwant %q", got, want)
			}
		})
	}
}

// TestMemberHostname: placement.hostname, by default the member's name.
func TestMemberHostname(t *testing.T) {
	for _, tc := range []struct {
		m    Member
		want string
	}{
		{m: Member{Name: "a"}, want: "a"},
		{m: Member{Name: "a", Placement: licensehav1.Placement{Hostname: "lic-a"}}, want: "lic-a"},
		{m: Member{Name: "main", Placement: licensehav1.Placement{MACAddress: "02:00:00:00:00:01"}}, want: "main"},
	} {
		if got := memberHostname(tc.m); got != tc.want {
			t.Errorf("hostname of %+v = %q, want %q", tc.m, got, tc.want)
		}
	}
}
