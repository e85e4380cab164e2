module dockercoins/ci/node/pause

go 1.24.0
