module syncproto/interop/go

go 1.19
