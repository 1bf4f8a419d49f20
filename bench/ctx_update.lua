-- wrk script: each wrk thread has one connection and one context of its own
-- (the ids, one per line, in the file $SB_BENCH_IDS) and PATCHes it with a
-- merge patch, sending the ETag it last got back as If-Match, so every
-- update is a real new version, never a conflict.
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("n", counter)
end

function init(args)
  local i = 0
  for line in io.lines(os.getenv("SB_BENCH_IDS")) do
    i = i + 1
    if i == n then id = line end
  end
  version = 1
  step = 0
end

function request()
  step = step + 1
  return wrk.format("PATCH", "/v1/contexts/" .. id, {
    ["Content-Type"] = "application/merge-patch+json",
    ["If-Match"] = '"' .. version .. '"',
  }, '{"data":{"workflow":{"currentStep":"step-' .. step .. '"}}}')
end

function response(status, headers, body)
  local etag = headers["ETag"] or headers["Etag"] or headers["etag"]
  if etag then version = tonumber(etag:match("%d+")) or version end
end
