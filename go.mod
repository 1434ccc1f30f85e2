module github.com/ldm-project/ldm

go 1.26.8
