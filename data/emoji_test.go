package data

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// fakeEmojiJSON has an emoji in every situation the builder handles.
const fakeEmojiJSON = `[
 {"name":"THUMBS UP SIGN","unified":"1F44D","image":"1f44d.png","short_name":"+1","short_names":["+1","thumbsup"],
  "category":"People & Body","subcategory":"hand-fingers-closed","sort_order":2,
  "has_img_apple":true,"has_img_google":true,"has_img_twitter":true,"has_img_facebook":true,
  "skin_variations":{
   "1F3FD":{"unified":"1F44D-1F3FD","image":"1f44d-1f3fd.png","has_img_apple":true,"has_img_google":true,"has_img_twitter":true},
   "1F3FB":{"unified":"1F44D-1F3FB","image":"1f44d-1f3fb.png","has_img_apple":true,"has_img_google":false,"has_img_twitter":true}}},
 {"name":"RED APPLE","unified":"1F34E","image":"1f34e.png","short_name":"apple","short_names":["apple"],
  "category":"Food & Drink","subcategory":"food-fruit","sort_order":1,
  "has_img_apple":true,"has_img_google":true,"has_img_twitter":true,"has_img_facebook":true},
 {"name":"Egypt Flag","unified":"1F1EA-1F1EC","image":"1f1ea-1f1ec.png","short_name":"flag-eg","short_names":["flag-eg"],
  "category":"Flags","subcategory":"country-flag","sort_order":3,
  "has_img_apple":true,"has_img_google":false,"has_img_twitter":true,"has_img_facebook":true},
 {"name":"SPARKLES","unified":"2728","image":"2728.png","short_name":"sparkles","short_names":["sparkles"],
  "category":"Activities","subcategory":"event","sort_order":4,
  "has_img_apple":true,"has_img_google":true,"has_img_twitter":true,"has_img_facebook":true},
 {"name":"APPLE ONLY","unified":"1FAE9","image":"1fae9.png","short_name":"apple_only","short_names":["apple_only"],
  "category":"Smileys & Emotion","subcategory":"face-smiling","sort_order":5,
  "has_img_apple":true,"has_img_google":false,"has_img_twitter":false,"has_img_facebook":false}
]`

// makeEmojiPackages writes extracted emoji-datasource packages for twitter,
// google and apple under dir; the twitter one lacks 2728.png, as a broken
// package might.
func makeEmojiPackages(t testing.TB, dir string) {
	t.Helper()
	images := map[string][]string{
		"twitter": {"1f44d.png", "1f44d-1f3fd.png", "1f44d-1f3fb.png", "1f34e.png", "1f1ea-1f1ec.png"},
		"google":  {"1f44d.png", "1f44d-1f3fd.png", "1f34e.png", "2728.png"},
		"apple":   {"1f44d.png", "1f34e.png", "1fae9.png"},
	}
	for set, files := range images {
		pkg := filepath.Join(dir, "emoji-datasource-"+set)
		writeFiles(t, pkg, map[string]string{
			"emoji.json":   fakeEmojiJSON,
			"package.json": `{"name":"emoji-datasource-` + set + `","version":"16.0.0"}`,
			"LICENSE":      "The MIT License (MIT)\n\nCopyright (c) 2013 Cal Henderson\n",
		})
		for i, f := range files {
			writeImage(t, pkg, "img/"+set+"/64/"+f, solid(64, 64, color.NRGBA{uint8(i), 0, 0, 128}))
		}
	}
}

func readRows(t testing.TB, path string) []emojiRow {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rows []emojiRow
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r emojiRow
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	return rows
}

func TestBuildEmojiFromExtractedPackages(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	makeEmojiPackages(t, src)
	sources, err := FindEmojiPackages(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"twitter": filepath.Join(src, "emoji-datasource-twitter"), "google": filepath.Join(src, "emoji-datasource-google")}; !reflect.DeepEqual(sources, want) {
		t.Fatalf("sources %v, want %v", sources, want)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	st, err := BuildEmoji(context.Background(), out, EmojiOptions{Sources: sources, SkinTones: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := EmojiStats{Pairs: 9, Train: 9, Emoji: 4, Concepts: 4, PerSet: map[string]int{"twitter": 5, "google": 4}, SkinVariants: 3, Missing: 1}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	rows := readRows(t, filepath.Join(out, "metadata.jsonl"))
	var files []string
	for _, r := range rows {
		files = append(files, r.FileName)
		if _, err := os.Stat(filepath.Join(out, r.FileName)); err != nil {
			t.Errorf("%s listed but not written: %v", r.FileName, err)
		}
	}
	wantFiles := []string{
		"twitter/1f34e.png", "twitter/1f44d.png", "twitter/1f44d-1f3fb.png", "twitter/1f44d-1f3fd.png", "twitter/1f1ea-1f1ec.png",
		"google/1f34e.png", "google/1f44d.png", "google/1f44d-1f3fd.png", "google/2728.png",
	}
	if !reflect.DeepEqual(files, wantFiles) {
		t.Errorf("files %v\nwant %v", files, wantFiles)
	}
	wantRows := map[string]emojiRow{
		"twitter/1f34e.png": {FileName: "twitter/1f34e.png", Text: "red apple, apple, food and drink, food fruit, twitter style",
			Name: "red apple", ShortNames: []string{"apple"}, Category: "Food & Drink", Subcategory: "food-fruit",
			Set: "twitter", Unified: "1F34E", Concept: "1F34E", Split: "train", License: "CC-BY-4.0"},
		"google/1f44d-1f3fd.png": {FileName: "google/1f44d-1f3fd.png",
			Text: "thumbs up sign, +1, thumbsup, medium skin tone, people and body, hand fingers closed, google style",
			Name: "thumbs up sign", ShortNames: []string{"+1", "thumbsup"}, Category: "People & Body", Subcategory: "hand-fingers-closed",
			Set: "google", Unified: "1F44D-1F3FD", Concept: "1F44D", SkinTone: "medium skin tone", Split: "train", License: "Apache-2.0"},
		"twitter/1f1ea-1f1ec.png": {FileName: "twitter/1f1ea-1f1ec.png", Text: "egypt flag, flag-eg, flags, country flag, twitter style",
			Name: "egypt flag", ShortNames: []string{"flag-eg"}, Category: "Flags", Subcategory: "country-flag",
			Set: "twitter", Unified: "1F1EA-1F1EC", Concept: "1F1EA-1F1EC", Split: "train", License: "CC-BY-4.0"},
	}
	for _, r := range rows {
		if w, ok := wantRows[r.FileName]; ok && !reflect.DeepEqual(r, w) {
			t.Errorf("row\n got %+v\nwant %+v", r, w)
		}
	}
	// Images are copied byte for byte.
	a, _ := os.ReadFile(filepath.Join(src, "emoji-datasource-google", "img", "google", "64", "2728.png"))
	b, _ := os.ReadFile(filepath.Join(out, "google", "2728.png"))
	if !bytes.Equal(a, b) {
		t.Error("google/2728.png is not a copy of the package's image")
	}
	lic, _ := os.ReadFile(filepath.Join(out, "LICENSES.md"))
	for _, s := range []string{"CC-BY 4.0", "Twemoji graphics by Twitter, Inc and other contributors", "Apache License, Version 2.0",
		"Noto Emoji", "emoji-datasource-twitter 16.0.0", "Copyright (c) 2013 Cal Henderson"} {
		if !bytes.Contains(lic, []byte(s)) {
			t.Errorf("LICENSES.md lacks %q", s)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "apple")); err == nil {
		t.Error("apple images were written")
	}
	// The result is a dataset whose structured fields the eval can use.
	d, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 9 || d.Items[0].Fields["category"] != "Food & Drink" || d.Items[0].Fields["set"] != "twitter" || d.Items[0].Fields["short_names"] != `["apple"]` {
		t.Errorf("read back: %d items, first fields %v", d.Len(), d.Items[0].Fields)
	}
}

func TestBuildEmojiWithoutSkinTonesAndOneSet(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	makeEmojiPackages(t, src)
	sources, err := FindEmojiPackages(src, []string{"google"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := BuildEmoji(context.Background(), out, EmojiOptions{Sets: []string{"google"}, Sources: sources, Holdout: 0.5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Three concepts in three categories: round(0.5·1) = 1 each, all held out.
	want := EmojiStats{Pairs: 3, Test: 3, Emoji: 3, Concepts: 3, TestConcepts: 3, PerSet: map[string]int{"google": 3}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("stats %+v, want %+v", st, want)
	}
}

func TestEmojiRefusesUnlicensedSets(t *testing.T) {
	src := t.TempDir()
	makeEmojiPackages(t, src)
	for _, sets := range [][]string{{"apple"}, {"twitter", "facebook"}} {
		if _, err := FindEmojiPackages(src, sets); err == nil || !strings.Contains(err.Error(), "only twitter and google are licensed") {
			t.Errorf("FindEmojiPackages(%v): err = %v", sets, err)
		}
		_, err := BuildEmoji(context.Background(), t.TempDir(), EmojiOptions{Sets: sets, Sources: map[string]string{"apple": src}}, nil)
		if err == nil || !strings.Contains(err.Error(), "not") {
			t.Errorf("BuildEmoji(%v): err = %v", sets, err)
		}
	}
}

func TestFindEmojiPackagesLayouts(t *testing.T) {
	tests := []struct {
		name string
		pkg  string // where the twitter package is put
	}{
		{"named folder", "emoji-datasource-twitter"},
		{"npm tarball extracted beside its name", "emoji-datasource-twitter/package"},
		{"versioned", "emoji-datasource-twitter-16.0.0"},
		{"node_modules", "node_modules/emoji-datasource-twitter"},
		{"bare package folder", "package"},
		{"the folder itself", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			pkg := filepath.Join(dir, filepath.FromSlash(tt.pkg))
			writeFiles(t, pkg, map[string]string{"emoji.json": "[]", "img/twitter/64/x.png": ""})
			got, err := FindEmojiPackages(dir, []string{"twitter"})
			if err != nil || got["twitter"] != pkg {
				t.Errorf("got %v, %v; want %s", got, err, pkg)
			}
		})
	}
	if _, err := FindEmojiPackages(t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "no emoji-datasource-twitter package under") {
		t.Errorf("empty folder: %v", err)
	}
}

// tarball packs files (name → content) as npm pack does, under package/.
func tarball(t testing.TB, path string, files map[string][]byte, names []string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, name := range names {
		b := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	tw.Close()
	gz.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFetchEmojiPackagesExtractsACachedTarball(t *testing.T) {
	cache := t.TempDir()
	var img bytes.Buffer
	png.Encode(&img, solid(64, 64, color.NRGBA{1, 2, 3, 255}))
	files := map[string][]byte{
		"package/emoji.json":                 []byte(fakeEmojiJSON),
		"package/package.json":               []byte(`{"version":"16.0.0"}`),
		"package/LICENSE":                    []byte("MIT"),
		"package/img/twitter/64/1f34e.png":   img.Bytes(),
		"package/img/twitter/32/1f34e.png":   img.Bytes(),
		"package/img/twitter/sheets/64.png":  img.Bytes(),
		"package/../escape.png":              img.Bytes(),
		"package/emoji_pretty.json":          []byte("{}"),
		"package/img/twitter/64/../../x.png": img.Bytes(),
	}
	var names []string
	for n := range files {
		names = append(names, n)
	}
	tarball(t, filepath.Join(cache, "emoji-datasource-twitter-16.0.0.tgz"), files, names)
	// No npm call happens: the tarball is cached. PATH is emptied to be sure.
	t.Setenv("PATH", "")
	got, err := FetchEmojiPackages(context.Background(), cache, "16.0.0", []string{"twitter"})
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(cache, "emoji-datasource-twitter-16.0.0")
	if got["twitter"] != dest {
		t.Fatalf("got %v, want %s", got, dest)
	}
	var extracted []string
	filepath.WalkDir(cache, func(p string, e os.DirEntry, err error) error {
		if !e.IsDir() {
			r, _ := filepath.Rel(cache, p)
			extracted = append(extracted, filepath.ToSlash(r))
		}
		return nil
	})
	want := []string{
		"emoji-datasource-twitter-16.0.0.tgz",
		"emoji-datasource-twitter-16.0.0/LICENSE",
		"emoji-datasource-twitter-16.0.0/emoji.json",
		"emoji-datasource-twitter-16.0.0/img/twitter/64/1f34e.png",
		"emoji-datasource-twitter-16.0.0/package.json",
	}
	sort.Strings(extracted)
	sort.Strings(want)
	if !reflect.DeepEqual(extracted, want) {
		t.Errorf("extracted %v\nwant %v", extracted, want)
	}
	// A second call reuses the extracted folder.
	if again, err := FetchEmojiPackages(context.Background(), cache, "16.0.0", []string{"twitter"}); err != nil || again["twitter"] != dest {
		t.Errorf("second call: %v %v", again, err)
	}
	// Without a tarball and without npm the error says what to do.
	_, err = FetchEmojiPackages(context.Background(), cache, "16.0.0", []string{"google"})
	if err == nil || !strings.Contains(err.Error(), "--from") {
		t.Errorf("no npm: err = %v", err)
	}
}

func TestHoldoutIsPerCategoryAndStable(t *testing.T) {
	cat := map[string]string{}
	for i := range 20 {
		cat[fmt.Sprintf("A%02d", i)] = "a"
	}
	for i := range 7 {
		cat[fmt.Sprintf("B%02d", i)] = "b"
	}
	test := holdoutConcepts(cat, 0.1)
	byCat := map[string]int{}
	for u := range test {
		byCat[cat[u]]++
	}
	if byCat["a"] != 2 || byCat["b"] != 1 {
		t.Errorf("held out per category %v, want a:2 b:1", byCat)
	}
	if again := holdoutConcepts(cat, 0.1); !reflect.DeepEqual(test, again) {
		t.Error("the split changes between calls")
	}
	// Adding a concept to one category leaves the other's split alone.
	cat["A20"] = "a"
	after := holdoutConcepts(cat, 0.1)
	for u := range test {
		if cat[u] == "b" && !after[u] {
			t.Errorf("%s left the test split of category b", u)
		}
	}
}

func TestEmojiCaption(t *testing.T) {
	tests := []struct {
		name, tone, cat, sub, set string
		short                     []string
		want                      string
	}{
		{"RED APPLE", "", "Food & Drink", "food-fruit", "twitter", []string{"apple"}, "red apple, apple, food and drink, food fruit, twitter style"},
		{"Pineapple", "", "Food & Drink", "food-fruit", "google", []string{"pineapple"}, "pineapple, food and drink, food fruit, google style"},
		{"KISS: MAN, MAN", skinTone("1F3FB-1F3FF"), "People & Body", "family", "twitter", []string{"man-kiss-man"},
			"kiss: man, man, man-kiss-man, light skin tone, dark skin tone, people and body, family, twitter style"},
		{"HANDSHAKE", skinTone("1F3FC-1F3FC"), "People & Body", "hands", "google", []string{"handshake"},
			"handshake, medium-light skin tone, people and body, hands, google style"},
		{"SMILING FACE", "", "Smileys & Emotion", "face-affection", "twitter", []string{"relaxed", "smiling_face"}, "smiling face, relaxed, smileys and emotion, face affection, twitter style"},
	}
	for _, tt := range tests {
		if got := EmojiCaption(tt.name, tt.short, tt.tone, tt.cat, tt.sub, tt.set); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
	}
}

func TestObsoletedEmojiShareTheirSuccessorsSplit(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	writeFiles(t, src, map[string]string{"emoji.json": `[
	 {"name":"MAN RUNNING","unified":"1F3C3-200D-2642-FE0F","image":"a.png","short_names":["man-running"],"category":"People & Body","subcategory":"person-activity","has_img_google":true},
	 {"name":"RUNNER","unified":"1F3C3","image":"b.png","short_names":["runner"],"category":"People & Body","subcategory":"person-activity","has_img_google":true,"obsoleted_by":"1F3C3-200D-2642-FE0F"},
	 {"name":"WOMAN RUNNING","unified":"1F3C3-200D-2640-FE0F","image":"c.png","short_names":["woman-running"],"category":"People & Body","subcategory":"person-activity","has_img_google":true}]`})
	for _, f := range []string{"a.png", "b.png", "c.png"} {
		writeImage(t, src, "img/google/64/"+f, solid(64, 64, color.NRGBA{A: 255}))
	}
	st, err := BuildEmoji(context.Background(), out, EmojiOptions{Sets: []string{"google"}, Sources: map[string]string{"google": src}, Holdout: 0.5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Concepts != 2 || st.TestConcepts != 1 {
		t.Errorf("%d concepts, %d held out; want 2 and 1", st.Concepts, st.TestConcepts)
	}
	rows := readRows(t, filepath.Join(out, "metadata.jsonl"))
	if rows[1].Concept != rows[0].Concept || rows[1].Split != rows[0].Split || rows[2].Split == rows[0].Split {
		t.Errorf("rows %+v", rows)
	}
}

func TestKeepTakesConceptsOutOfTheHeldOutSplit(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"emoji.json": `[
	 {"name":"RED APPLE","unified":"1F34E","image":"a.png","short_names":["apple"],"category":"Food & Drink","subcategory":"food-fruit","has_img_google":true},
	 {"name":"GREEN APPLE","unified":"1F34F","image":"b.png","short_names":["green_apple"],"category":"Food & Drink","subcategory":"food-fruit","has_img_google":true},
	 {"name":"PEAR","unified":"1F350","image":"c.png","short_names":["pear"],"category":"Food & Drink","subcategory":"food-fruit","has_img_google":true},
	 {"name":"PEACH","unified":"1F351","image":"d.png","short_names":["peach"],"category":"Food & Drink","subcategory":"food-fruit","has_img_google":true}]`})
	for _, f := range []string{"a.png", "b.png", "c.png", "d.png"} {
		writeImage(t, src, "img/google/64/"+f, solid(64, 64, color.NRGBA{A: 255}))
	}
	build := func(keep ...string) (EmojiStats, map[string]string, error) {
		out := t.TempDir()
		st, err := BuildEmoji(context.Background(), out, EmojiOptions{Sets: []string{"google"}, Sources: map[string]string{"google": src}, Holdout: 0.5, Keep: keep}, nil)
		if err != nil {
			return st, nil, err
		}
		split := map[string]string{}
		for _, r := range readRows(t, filepath.Join(out, "metadata.jsonl")) {
			split[r.Unified] = r.Split
		}
		return st, split, nil
	}
	st, before, err := build()
	if err != nil {
		t.Fatal(err)
	}
	if st.TestConcepts != 2 {
		t.Fatalf("%d concepts held out, want 2", st.TestConcepts)
	}
	var held []string
	for u, s := range before {
		if s == "test" {
			held = append(held, u)
		}
	}
	sort.Strings(held)
	// Keep one held-out concept by code point, the other by name (any case).
	name := map[string]string{"1F34E": "red apple", "1F34F": "Green Apple", "1F350": "pear", "1F351": "PEACH"}
	st, after, err := build(strings.ToLower(held[0]), name[held[1]])
	if err != nil {
		t.Fatal(err)
	}
	if st.TestConcepts != 0 || st.Pairs != 4 {
		t.Errorf("kept both held-out concepts: %d held out, %d pairs; want 0 and 4", st.TestConcepts, st.Pairs)
	}
	for u, s := range after {
		if s != "train" {
			t.Errorf("%s in split %q, want train", u, s)
		}
	}
	// Keeping one shrinks the held-out set: no other concept takes its place.
	st, after, err = build(held[0])
	if err != nil {
		t.Fatal(err)
	}
	if st.TestConcepts != 1 || after[held[0]] != "train" || after[held[1]] != "test" {
		t.Errorf("kept %s: splits %v (%d held out)", held[0], after, st.TestConcepts)
	}
	if _, _, err := build("1F99F"); err == nil || !strings.Contains(err.Error(), "no such emoji") {
		t.Errorf("unknown emoji: err = %v", err)
	}
}
