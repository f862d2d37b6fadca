module github.com/stoker-data/stoker/deploy

go 1.26.0
