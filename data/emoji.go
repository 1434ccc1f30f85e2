package data

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ldm-project/ldm/internal/fsutil"
)

// EmojiSets are the emoji-datasource image sets whose licences allow
// training on them: Twitter's Twemoji (CC-BY 4.0) and Google's Noto Emoji
// (Apache 2.0). Apple's and Facebook's art is not licensed for this and is
// never used.
var EmojiSets = []string{"twitter", "google"}

// EmojiVersion is the emoji-datasource release the builder was written
// against.
const EmojiVersion = "16.0.0"

// EmojiOptions configures BuildEmoji.
type EmojiOptions struct {
	// Sets are the image sets to include (default EmojiSets).
	Sets []string
	// Sources maps each set to its extracted npm package (the folder holding
	// emoji.json and img/<set>/64); see FetchEmojiPackages and
	// FindEmojiPackages.
	Sources map[string]string
	// SkinTones adds the skin-tone variants, which have their own images.
	SkinTones bool
	// Holdout is the fraction of concepts (base emoji, with all their sets
	// and skin tones) marked split "test", chosen per category by a fixed
	// hash so that the split is the same on every run.
	Holdout float64
	// Keep lists concepts that stay in the training split even when the
	// hash holds them out (unified code points such as "1F34E", or emoji
	// names such as "red apple"); no other concept takes their place, so
	// the held-out set only shrinks. See EmojiKeep.
	Keep []string
}

// EmojiKeep is the default EmojiOptions.Keep: red apple, the prompt of the
// README's first command, which the default model should know.
var EmojiKeep = []string{"1F34E"}

// EmojiStats counts what BuildEmoji wrote.
type EmojiStats struct {
	// Pairs is the number of image–caption pairs, Train and Test their
	// split.
	Pairs, Train, Test int
	// Emoji counts the distinct base emoji written; Concepts groups an
	// obsoleted emoji with its successor; TestConcepts are those held out.
	Emoji, Concepts, TestConcepts int
	// PerSet counts pairs per image set.
	PerSet map[string]int
	// SkinVariants counts pairs that are skin-tone variants.
	SkinVariants int
	// Missing counts images emoji.json announces but the package lacks or
	// that are not readable PNGs; they are left out.
	Missing int
}

// emojiEntry is the part of an emoji.json record the builder reads.
type emojiEntry struct {
	Name           string                  `json:"name"`
	Unified        string                  `json:"unified"`
	Image          string                  `json:"image"`
	ShortName      string                  `json:"short_name"`
	ShortNames     []string                `json:"short_names"`
	Category       string                  `json:"category"`
	Subcategory    string                  `json:"subcategory"`
	SortOrder      int                     `json:"sort_order"`
	ObsoletedBy    string                  `json:"obsoleted_by"`
	SkinVariations map[string]emojiVariant `json:"skin_variations"`
	Has            map[string]bool         `json:"-"`
}

type emojiVariant struct {
	Unified string          `json:"unified"`
	Image   string          `json:"image"`
	Has     map[string]bool `json:"-"`
}

// hasImages collects the has_img_<set> flags of a record.
func hasImages(raw []byte) (map[string]bool, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, err
	}
	has := map[string]bool{}
	for k, v := range all {
		if set, ok := strings.CutPrefix(k, "has_img_"); ok {
			has[set] = string(v) == "true"
		}
	}
	return has, nil
}

func (e *emojiEntry) UnmarshalJSON(b []byte) error {
	type plain emojiEntry
	if err := json.Unmarshal(b, (*plain)(e)); err != nil {
		return err
	}
	var err error
	e.Has, err = hasImages(b)
	return err
}

func (v *emojiVariant) UnmarshalJSON(b []byte) error {
	type plain emojiVariant
	if err := json.Unmarshal(b, (*plain)(v)); err != nil {
		return err
	}
	var err error
	v.Has, err = hasImages(b)
	return err
}

// skinToneNames are the Unicode names of the Fitzpatrick modifiers (CLDR).
var skinToneNames = map[string]string{
	"1F3FB": "light skin tone",
	"1F3FC": "medium-light skin tone",
	"1F3FD": "medium skin tone",
	"1F3FE": "medium-dark skin tone",
	"1F3FF": "dark skin tone",
}

// skinTone names a skin_variations key ("1F3FD", or "1F3FB-1F3FF" for two
// people).
func skinTone(key string) string {
	var names []string
	for _, k := range strings.Split(key, "-") {
		n, ok := skinToneNames[strings.ToUpper(k)]
		if !ok {
			n = strings.ToLower(k)
		}
		if len(names) == 0 || names[len(names)-1] != n {
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}

// EmojiCaption is the caption of an emoji image: its name, short names,
// skin tone, category, subcategory and the style, e.g. "red apple, apple,
// food and drink, food fruit, twitter style".
func EmojiCaption(name string, shortNames []string, tone, category, subcategory, set string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	parts := []string{}
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			parts = append(parts, s)
		}
	}
	add(name)
	for _, s := range shortNames {
		add(strings.ToLower(strings.ReplaceAll(s, "_", " ")))
	}
	add(tone)
	add(strings.ToLower(strings.ReplaceAll(category, "&", "and")))
	add(strings.ReplaceAll(subcategory, "-", " "))
	add(set + " style")
	return strings.Join(parts, ", ")
}

// emojiRow is a metadata.jsonl line of the emoji set.
type emojiRow struct {
	FileName    string   `json:"file_name"`
	Text        string   `json:"text"`
	Name        string   `json:"name"`
	ShortNames  []string `json:"short_names"`
	Category    string   `json:"category"`
	Subcategory string   `json:"subcategory"`
	Set         string   `json:"set"`
	Unified     string   `json:"unified"`
	// Concept is the base emoji's unified code (its successor's, for an
	// obsoleted emoji), shared by its sets and skin tones: the unit of the
	// train/test split.
	Concept  string `json:"concept"`
	SkinTone string `json:"skin_tone,omitempty"`
	Split    string `json:"split"`
	License  string `json:"license"`
}

var emojiLicense = map[string]string{"twitter": "CC-BY-4.0", "google": "Apache-2.0"}

func checkEmojiSets(sets []string) error {
	for _, s := range sets {
		if _, ok := emojiLicense[s]; !ok {
			return fmt.Errorf("emoji set %q: only %s are licensed for this use (Apple's and Facebook's art is not)", s, strings.Join(EmojiSets, " and "))
		}
	}
	return nil
}

// BuildEmoji writes an imagefolder into out: <set>/<code>.png copied
// unchanged from each package's img/<set>/64, metadata.jsonl (file_name,
// text and the structured fields of emojiRow) and LICENSES.md. progress, if
// not nil, is called after each image.
func BuildEmoji(ctx context.Context, out string, opts EmojiOptions, progress func(done, total int)) (EmojiStats, error) {
	st := EmojiStats{PerSet: map[string]int{}}
	sets := opts.Sets
	if len(sets) == 0 {
		sets = EmojiSets
	}
	if err := checkEmojiSets(sets); err != nil {
		return st, err
	}
	if opts.Holdout < 0 || opts.Holdout >= 1 {
		return st, fmt.Errorf("holdout %g: want a fraction in [0, 1)", opts.Holdout)
	}
	entries := map[string][]emojiEntry{}
	versions := map[string]string{}
	for _, set := range sets {
		dir, ok := opts.Sources[set]
		if !ok {
			return st, fmt.Errorf("no package folder for the %s set", set)
		}
		b, err := os.ReadFile(filepath.Join(dir, "emoji.json"))
		if err != nil {
			return st, fmt.Errorf("reading the %s package: %w", set, err)
		}
		var es []emojiEntry
		if err := json.Unmarshal(b, &es); err != nil {
			return st, fmt.Errorf("%s: %w", filepath.Join(dir, "emoji.json"), err)
		}
		sort.SliceStable(es, func(i, j int) bool { return es[i].SortOrder < es[j].SortOrder })
		entries[set] = es
		versions[set] = packageVersion(dir)
	}

	// Concepts and their split, stratified by category. An emoji that
	// Unicode obsoleted (RUNNER → MAN RUNNING) joins its successor's concept,
	// so that near-identical images do not straddle the split.
	known := map[string]bool{}
	for _, set := range sets {
		for _, e := range entries[set] {
			known[e.Unified] = true
		}
	}
	concept := func(e emojiEntry) string {
		if known[e.ObsoletedBy] {
			return e.ObsoletedBy
		}
		return e.Unified
	}
	category := map[string]string{}
	for _, set := range sets {
		for _, e := range entries[set] {
			if e.Unified != "" && e.Has[set] {
				if _, ok := category[concept(e)]; !ok {
					category[concept(e)] = e.Category
				}
			}
		}
	}
	test := holdoutConcepts(category, opts.Holdout)
	if len(opts.Keep) > 0 {
		keep := map[string]bool{}
		for _, k := range opts.Keep {
			if k = strings.TrimSpace(k); k != "" { // blank: nothing (--keep= keeps nothing)
				keep[strings.ToUpper(k)] = true
			}
		}
		found := map[string]bool{}
		for _, set := range sets {
			for _, e := range entries[set] {
				for _, k := range []string{strings.ToUpper(e.Unified), strings.ToUpper(e.Name)} {
					if k != "" && keep[k] {
						found[k] = true
						delete(test, concept(e))
					}
				}
			}
		}
		for _, k := range opts.Keep {
			if k = strings.TrimSpace(k); k != "" && !found[strings.ToUpper(k)] {
				return st, fmt.Errorf("keep %q: no such emoji (give a unified code point such as 1F34E or an emoji name)", k)
			}
		}
	}
	st.Concepts, st.TestConcepts = len(category), len(test)

	type job struct {
		src string
		row emojiRow
	}
	var jobs []job
	for _, set := range sets {
		imgDir := filepath.Join(opts.Sources[set], "img", set, "64")
		for _, e := range entries[set] {
			if e.Unified == "" {
				continue
			}
			name := e.Name
			if name == "" {
				name = strings.ReplaceAll(e.ShortName, "_", " ")
			}
			split := "train"
			if test[concept(e)] {
				split = "test"
			}
			row := func(unified, image, tone string) job {
				return job{filepath.Join(imgDir, image), emojiRow{
					FileName: set + "/" + image, Name: strings.ToLower(name), ShortNames: e.ShortNames,
					Text:     EmojiCaption(name, e.ShortNames, tone, e.Category, e.Subcategory, set),
					Category: e.Category, Subcategory: e.Subcategory, Set: set,
					Unified: unified, Concept: concept(e), SkinTone: tone, Split: split, License: emojiLicense[set],
				}}
			}
			if e.Has[set] {
				jobs = append(jobs, row(e.Unified, e.Image, ""))
			}
			if !opts.SkinTones {
				continue
			}
			keys := make([]string, 0, len(e.SkinVariations))
			for k := range e.SkinVariations {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if v := e.SkinVariations[k]; v.Has[set] {
					jobs = append(jobs, row(v.Unified, v.Image, skinTone(k)))
				}
			}
		}
	}

	rows := make([]emojiRow, 0, len(jobs))
	for i, j := range jobs {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if err := copyPNG(j.src, filepath.Join(out, filepath.FromSlash(j.row.FileName))); err != nil {
			if errors.Is(err, errNotPNG) || errors.Is(err, fs.ErrNotExist) {
				slog.Warn("emoji image missing or unreadable; left out", "file", j.src, "err", err)
				st.Missing++
			} else {
				return st, err
			}
		} else {
			rows = append(rows, j.row)
		}
		if progress != nil {
			progress(i+1, len(jobs))
		}
	}
	emoji := map[string]bool{}
	for _, r := range rows {
		if r.SkinTone == "" {
			emoji[r.Unified] = true
		}
		st.Pairs++
		st.PerSet[r.Set]++
		if r.SkinTone != "" {
			st.SkinVariants++
		}
		if r.Split == "test" {
			st.Test++
		} else {
			st.Train++
		}
	}
	st.Emoji = len(emoji)
	if len(rows) == 0 {
		return st, errors.New("no emoji images found in the packages")
	}
	if err := writeJSONL(filepath.Join(out, "metadata.jsonl"), rows); err != nil {
		return st, err
	}
	return st, fsutil.WriteFileAtomic(filepath.Join(out, "LICENSES.md"), []byte(emojiLicenses(sets, versions, opts.Sources, st)))
}

// holdoutConcepts picks round(frac·n) concepts of each category of n, in the
// order of a fixed hash of their code.
func holdoutConcepts(category map[string]string, frac float64) map[string]bool {
	byCat := map[string][]string{}
	for u, c := range category {
		byCat[c] = append(byCat[c], u)
	}
	test := map[string]bool{}
	for _, us := range byCat {
		key := func(u string) string {
			h := sha256.Sum256([]byte("ldm emoji holdout\x00" + u))
			return string(h[:])
		}
		sort.Slice(us, func(i, j int) bool { return key(us[i]) < key(us[j]) })
		k := int(math.Round(frac * float64(len(us))))
		for _, u := range us[:k] {
			test[u] = true
		}
	}
	return test
}

var errNotPNG = errors.New("not a PNG image")

// copyPNG copies a PNG file unchanged after checking that it decodes as one.
func copyPNG(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if _, err := png.DecodeConfig(bytes.NewReader(b)); err != nil {
		return fmt.Errorf("%w: %v", errNotPNG, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(dst, b)
}

func packageVersion(dir string) string {
	var p struct {
		Version string `json:"version"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "package.json")); err == nil && json.Unmarshal(b, &p) == nil && p.Version != "" {
		return p.Version
	}
	return "unknown version"
}

func emojiLicenses(sets []string, versions, sources map[string]string, st EmojiStats) string {
	var b strings.Builder
	b.WriteString("# Licences\n\n")
	b.WriteString("This dataset was built by `ldm data emoji` from the npm packages below. Every image is copied unchanged\n" +
		"from the package's `img/<set>/64/` folder; the captions and the other fields of `metadata.jsonl` were\n" +
		"derived from the package's `emoji.json`. No other emoji sets are included: Apple's and Facebook's emoji\n" +
		"art is not licensed for this use.\n\n")
	fmt.Fprintf(&b, "%d image–caption pairs of %d emoji; %d of %d concepts held out for testing (split \"test\").\n",
		st.Pairs, st.Emoji, st.TestConcepts, st.Concepts)
	for _, set := range sets {
		switch set {
		case "twitter":
			fmt.Fprintf(&b, "\n## `twitter/` — Twemoji, CC-BY 4.0 (emoji-datasource-twitter %s)\n\n", versions[set])
			b.WriteString("Twemoji graphics Copyright 2019 Twitter, Inc and other contributors, licensed under CC-BY 4.0:\n" +
				"https://creativecommons.org/licenses/by/4.0/ (source: https://github.com/jdecked/twemoji).\n" +
				"Attribution, as the licence requires: \"Twemoji graphics by Twitter, Inc and other contributors,\n" +
				"licensed under CC-BY 4.0\". Changes: none to the images, which keep their file names; captions were\n" +
				"added.\n")
		case "google":
			fmt.Fprintf(&b, "\n## `google/` — Noto Emoji, Apache License 2.0 (emoji-datasource-google %s)\n\n", versions[set])
			b.WriteString("Noto Emoji images Copyright 2013 Google Inc., licensed under the Apache License, Version 2.0:\n" +
				"https://www.apache.org/licenses/LICENSE-2.0 (source: https://github.com/googlefonts/noto-emoji).\n" +
				"The images are unchanged. Noto's flag images are in the public domain.\n")
		}
	}
	b.WriteString("\n## Metadata — emoji-datasource, MIT\n\n" +
		"`emoji.json` (names, short names, categories) comes from emoji-datasource, https://github.com/iamcal/emoji-data.\n")
	for _, set := range sets {
		if lic, err := os.ReadFile(filepath.Join(sources[set], "LICENSE")); err == nil {
			b.WriteString("\n```\n" + strings.TrimSpace(string(lic)) + "\n```\n")
			break
		}
	}
	return b.String()
}

// FindEmojiPackages locates already-extracted emoji-datasource packages
// under dir. For each set it tries dir/emoji-datasource-<set>, its
// package/ subfolder (an extracted npm tarball),
// dir/node_modules/emoji-datasource-<set>, dir/package and dir itself; the
// first holding emoji.json and img/<set>/64 wins.
func FindEmojiPackages(dir string, sets []string) (map[string]string, error) {
	if len(sets) == 0 {
		sets = EmojiSets
	}
	if err := checkEmojiSets(sets); err != nil {
		return nil, err
	}
	found := map[string]string{}
	for _, set := range sets {
		pkg := "emoji-datasource-" + set
		cands := []string{
			filepath.Join(dir, pkg), filepath.Join(dir, pkg, "package"),
			filepath.Join(dir, "node_modules", pkg),
		}
		if m, _ := filepath.Glob(filepath.Join(dir, pkg+"-*")); len(m) > 0 {
			sort.Sort(sort.Reverse(sort.StringSlice(m)))
			for _, p := range m {
				cands = append(cands, p, filepath.Join(p, "package"))
			}
		}
		cands = append(cands, filepath.Join(dir, "package"), dir)
		for _, c := range cands {
			if isEmojiPackage(c, set) {
				found[set] = c
				break
			}
		}
		if found[set] == "" {
			return nil, fmt.Errorf("no %s package under %s: want a folder with emoji.json and img/%s/64/ (e.g. %s)", pkg, dir, set, filepath.Join(dir, pkg))
		}
	}
	return found, nil
}

func isEmojiPackage(dir, set string) bool {
	if st, err := os.Stat(filepath.Join(dir, "emoji.json")); err != nil || st.IsDir() {
		return false
	}
	st, err := os.Stat(filepath.Join(dir, "img", set, "64"))
	return err == nil && st.IsDir()
}

// FetchEmojiPackages downloads emoji-datasource-<set>@version for each set
// with `npm pack` into cacheDir (skipped when the tarball is there already)
// and extracts emoji.json, package.json, LICENSE and img/<set>/64 into
// cacheDir/emoji-datasource-<set>-<version>. It returns the extracted
// folders, ready for EmojiOptions.Sources.
func FetchEmojiPackages(ctx context.Context, cacheDir, version string, sets []string) (map[string]string, error) {
	if len(sets) == 0 {
		sets = EmojiSets
	}
	if version == "" {
		version = EmojiVersion
	}
	if err := checkEmojiSets(sets); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}
	found := map[string]string{}
	for _, set := range sets {
		pkg := "emoji-datasource-" + set
		dest := filepath.Join(cacheDir, pkg+"-"+version)
		if isEmojiPackage(dest, set) {
			found[set] = dest
			continue
		}
		tgz := filepath.Join(cacheDir, pkg+"-"+version+".tgz")
		if _, err := os.Stat(tgz); err != nil {
			if err := npmPack(ctx, pkg+"@"+version, cacheDir); err != nil {
				return nil, err
			}
			if _, err := os.Stat(tgz); err != nil {
				return nil, fmt.Errorf("npm pack did not produce %s", tgz)
			}
		}
		if err := extractEmojiPackage(tgz, dest, set); err != nil {
			return nil, fmt.Errorf("extracting %s: %w", tgz, err)
		}
		found[set] = dest
	}
	return found, nil
}

func npmPack(ctx context.Context, spec, dir string) error {
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("npm not found (install Node.js, or extract the packages yourself and pass their folder with --from): %w", err)
	}
	slog.Info("downloading", "package", spec, "into", dir)
	cmd := exec.CommandContext(ctx, npm, "pack", spec, "--pack-destination", dir, "--silent")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm pack %s: %w: %s", spec, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// extractEmojiPackage extracts the files the builder needs into a temporary
// folder and renames it to dest, so that a killed extraction leaves nothing
// that looks complete.
func extractEmojiPackage(tgz, dest, set string) error {
	f, err := os.Open(tgz)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	want := func(name string) bool {
		switch name {
		case "emoji.json", "package.json", "LICENSE", "README.md":
			return true
		}
		dir, file := path.Split(name)
		return dir == "img/"+set+"/64/" && strings.HasSuffix(file, ".png")
	}
	tr := tar.NewReader(gz)
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name, ok := strings.CutPrefix(path.Clean(h.Name), "package/")
		if !ok || h.Typeflag != tar.TypeReg || !want(name) {
			continue
		}
		p := filepath.Join(tmp, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := writeFile(p, tr); err != nil {
			return err
		}
		n++
	}
	if !isEmojiPackage(tmp, set) {
		return fmt.Errorf("the tarball has no emoji.json or img/%s/64 (%d files taken)", set, n)
	}
	os.RemoveAll(dest)
	return os.Rename(tmp, dest)
}

// writeFile writes r into a new file at p; used inside a temporary folder
// that is renamed into place as a whole.
func writeFile(p string, r io.Reader) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
