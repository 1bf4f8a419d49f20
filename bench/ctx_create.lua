-- wrk script: POST /v1/contexts, a small dealership conversation each time.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"workflowId":"wf-bench","data":{"conversation":{"intent":'
  .. '"test_drive","messages":[{"role":"user","content":"Is the blue F-150 '
  .. 'XLT still available for a test drive on Saturday?"}]},"workflow":{'
  .. '"currentStep":"schedule","variables":{"vin":"1FTFW1E50PFA00001"}}}}'
