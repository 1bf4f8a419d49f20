/* sampling.c: switchboard answers an agent's sampling/createMessage with
 * the agent's own models when the caller of the call cannot (a client
 * without the sampling capability, a workflow run, anything whose on_input
 * refuses).
 *
 * call_inputs.c offers the question here once the caller has refused it;
 * when an LLM endpoint is configured (gateway option `llm`) and the
 * agent's definition names models, the request is mapped to a chat
 * completion (systemPrompt and text messages; maxTokens capped by the
 * definition's; the definition's temperature; its outputFormat checked, a
 * structured answer against the schema the agent gave in _meta under
 * SB_LLM_META_OUTPUT_SCHEMA) and sent along the chain models.primary,
 * models.fallback... (llm/). The answer goes back through
 * sb_gateway_input_answer as a CreateMessageResult, or as a JSON-RPC error
 * naming each model tried and why. If the question goes away first (the
 * agent withdrew it, the call ended), its LLM call is cancelled.
 */
#include <math.h>

#include "gateway/gateway_internal.h"

#define MODULE "agents"
#define SAMPLING "sampling/createMessage"

struct gw_sampling {
  sb_gateway_input *in; /* NULL once the question went away */
  sb_llm_call *call;
  char *agent_id;
};

int gw_sampling_possible(sb_gateway *gw, const sb_agent_def *def,
                         const char *method) {
  return gw->opts.llm && def && def->model_primary && *def->model_primary &&
         method && strcmp(method, SAMPLING) == 0;
}

json_t *gw_sampling_caps(sb_gateway *gw, const sb_agent_def *def,
                         json_t *caps) {
  if (!gw_sampling_possible(gw, def, SAMPLING) ||
      json_object_get(caps, "sampling"))
    return json_incref(caps);
  json_t *more = caps ? json_copy(caps) : json_object();
  if (more) json_object_set_new(more, "sampling", json_object());
  return more;
}

static json_t *rpc_error(int code, const char *msg) {
  return json_pack("{siss}", "code", code, "message", msg);
}

/* MCP content (one block or a list of blocks) as the text of an OpenAI
 * message. NULL with why[] filled for anything but text. New string. */
static char *content_text(json_t *content, size_t index, char *why, size_t n) {
  json_t *single[1] = {content};
  size_t count = json_is_array(content) ? json_array_size(content) : 1;
  sb_buf text = SB_BUF_INIT;
  for (size_t i = 0; i < count; i++) {
    json_t *block = json_is_array(content) ? json_array_get(content, i)
                                           : single[0];
    const char *type = json_string_value(json_object_get(block, "type"));
    const char *t = json_string_value(json_object_get(block, "text"));
    if (!type || strcmp(type, "text") != 0 || !t) {
      snprintf(why, n,
               "messages[%zu]: content of type %s cannot be answered by "
               "switchboard's models (text only)",
               index, type ? type : "(none)");
      sb_buf_free(&text);
      return NULL;
    }
    if (sb_buf_append_str(&text, t) != 0) {
      sb_buf_free(&text);
      snprintf(why, n, "out of memory");
      return NULL;
    }
  }
  char *out = text.data ? text.data : sb_strdup("");
  return out;
}

/* The sampling messages in OpenAI form (new reference), or NULL with why. */
static json_t *chat_messages(json_t *params, char *why, size_t n) {
  json_t *messages = json_object_get(params, "messages");
  if (!json_is_array(messages) || json_array_size(messages) == 0) {
    snprintf(why, n, "messages: expected a non-empty list");
    return NULL;
  }
  json_t *out = json_array();
  size_t i;
  json_t *m;
  json_array_foreach(messages, i, m) {
    const char *role = json_string_value(json_object_get(m, "role"));
    if (!role || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)) {
      snprintf(why, n, "messages[%zu].role: expected user or assistant", i);
      json_decref(out);
      return NULL;
    }
    char *text = content_text(json_object_get(m, "content"), i, why, n);
    if (!text) {
      json_decref(out);
      return NULL;
    }
    json_array_append_new(out, json_pack("{ssss}", "role", role, "content",
                                         text));
    sb_free(text);
  }
  return out;
}

/* finish_reason as MCP's stopReason. */
static const char *stop_reason(const char *finish) {
  if (!finish || strcmp(finish, "stop") == 0) return "endTurn";
  if (strcmp(finish, "length") == 0) return "maxTokens";
  return finish;
}

static void job_free(gw_sampling *job) {
  sb_free(job->agent_id);
  sb_free(job);
}

static void on_answer(void *ud, const sb_llm_result *r) {
  gw_sampling *job = ud;
  sb_gateway_input *in = job->in;
  job->call = NULL;
  if (!in || r->outcome == SB_LLM_CANCELLED) {
    job_free(job);
    return;
  }
  gw_input_set_sampling(in, NULL);
  if (r->outcome == SB_LLM_ANSWERED) {
    SB_INFO(MODULE, "agent %s: model %s answered its sampling request",
            job->agent_id, r->model);
    json_t *result = json_pack(
        "{sss{ssss}ssss}", "role", "assistant", "content", "type", "text",
        "text", r->text, "model", r->model, "stopReason",
        stop_reason(r->finish_reason));
    sb_gateway_input_answer(in, result, NULL);
  } else {
    SB_WARN(MODULE, "agent %s: sampling with its models failed: %s",
            job->agent_id, r->message);
    char *msg = sb_asprintf("switchboard answered with agent %s's models: %s",
                            job->agent_id, r->message);
    sb_gateway_input_answer(
        in, NULL, rpc_error(SB_RPC_INTERNAL_ERROR, msg ? msg : r->message));
    sb_free(msg);
  }
  job_free(job);
}

int gw_sampling_start(sb_gateway *gw, const sb_agent_def *def,
                      sb_gateway_input *in) {
  const char *method = sb_gateway_input_method(in);
  if (!gw_sampling_possible(gw, def, method)) return SB_ENOENT;
  json_t *params = sb_gateway_input_params(in);
  char why[300];
  json_t *messages = chat_messages(params, why, sizeof why);
  if (!messages) {
    /* The agent's request is the problem: it hears so, now. */
    char *msg = sb_asprintf("switchboard cannot answer this sampling request "
                            "with agent %s's models: %s",
                            def->id, why);
    gw_input_set_sampling(in, NULL);
    sb_gateway_input_answer(
        in, NULL, rpc_error(SB_RPC_INVALID_PARAMS, msg ? msg : why));
    sb_free(msg);
    return 0;
  }
  size_t n_models = 1 + def->model_fallback.len;
  const char **models = sb_calloc(n_models, sizeof *models);
  gw_sampling *job = sb_calloc(1, sizeof *job);
  int rc = SB_ENOMEM;
  if (!models || !job || !(job->agent_id = sb_strdup(def->id))) goto fail;
  models[0] = def->model_primary;
  for (size_t i = 0; i < def->model_fallback.len; i++)
    models[i + 1] = def->model_fallback.items[i];
  /* maxTokens: the request's, capped by the definition's. */
  json_t *mt = json_object_get(params, "maxTokens");
  int64_t max_tokens = json_is_integer(mt) && json_integer_value(mt) > 0
                           ? (int64_t)json_integer_value(mt)
                           : 0;
  if (def->max_tokens > 0 && (max_tokens == 0 || def->max_tokens < max_tokens))
    max_tokens = def->max_tokens;
  /* temperature: the definition's; the request's if it has none. */
  json_t *rt = json_object_get(params, "temperature");
  int has_temperature = 1;
  double temperature = def->temperature;
  if (!(def->temperature >= 0) || isnan(def->temperature)) {
    has_temperature = json_is_number(rt);
    temperature = json_number_value(rt);
  }
  sb_llm_format format = SB_LLM_TEXT;
  json_t *schema = json_object_get(json_object_get(params, "_meta"),
                                   SB_LLM_META_OUTPUT_SCHEMA);
  if (def->output_format == SB_AGENT_OUTPUT_JSON) format = SB_LLM_JSON;
  if (def->output_format == SB_AGENT_OUTPUT_STRUCTURED)
    format = json_is_object(schema) ? SB_LLM_STRUCTURED : SB_LLM_JSON;
  sb_llm_request req = {
      .models = models,
      .n_models = n_models,
      .messages = messages,
      .system_prompt =
          json_string_value(json_object_get(params, "systemPrompt")),
      .max_tokens = max_tokens,
      .has_temperature = has_temperature,
      .temperature = temperature,
      .format = format,
      .schema = format == SB_LLM_STRUCTURED ? schema : NULL,
  };
  job->in = in;
  sb_error err = {0};
  rc = sb_llm_complete(gw->opts.llm, &req, on_answer, job, &job->call, &err);
  if (rc != 0) {
    SB_WARN(MODULE, "agent %s: cannot ask its models: %s", def->id, err.msg);
    goto fail;
  }
  gw_input_set_sampling(in, job);
  SB_INFO(MODULE,
          "agent %s asked for sampling and its caller cannot answer: asking "
          "its models (%s first, %zu in all)",
          def->id, def->model_primary, n_models);
  sb_free(models);
  json_decref(messages);
  return 0;
fail:
  sb_free(models);
  json_decref(messages);
  if (job) job_free(job);
  return rc;
}

void gw_sampling_abandon(gw_sampling *job) {
  if (!job) return;
  job->in = NULL;
  if (job->call) {
    SB_INFO(MODULE, "agent %s: its sampling request went away before a "
            "model answered", job->agent_id);
    sb_llm_cancel(job->call); /* on_answer frees the job */
  }
  else
    job_free(job);
}
