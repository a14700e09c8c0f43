package kflow.client;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.File;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;
import java.util.Iterator;
import java.util.Map;

import kflow.ErrorInfo;
import kflow.Payload;
import kflow.RunFinished;

/**
 * The command line: {@code start WORKFLOW [ARGS_JSON]} prints the new run's id; {@code result RUN_ID [--timeout
 * SECONDS]} waits for the run and prints its result; {@code schemas DIR} prints the fingerprint of every record
 * schema of a schema directory as this client's Avro computes it.
 *
 * <p>Exit status: 0 done (completed), 1 the run failed or was cancelled (one line on stderr: its error type and
 * message) or another error (a schema that does not load), 2 bad arguments, 4 Kafka unreachable, a topic missing, or the timeout passed.
 */
public final class Main {
    static final int OK = 0;
    static final int FAILED = 1;
    static final int USAGE = 2;
    static final int UNAVAILABLE = 4;

    static final String SYNOPSIS = String.join("\n",
            "usage: java -jar kflow-client.jar start WORKFLOW [ARGS_JSON]",
            "       java -jar kflow-client.jar result RUN_ID [--timeout SECONDS]",
            "       java -jar kflow-client.jar schemas DIR",
            "       java -jar kflow-client.jar config");

    static final String USAGE_TEXT = String.join("\n",
            SYNOPSIS,
            "",
            "  start   send a StartWorkflow to <prefix>.inbox (its schema to <prefix>.schemas first) and print",
            "          the run id; ARGS_JSON is a JSON array of positional arguments (default []) or an object",
            "          {\"args\": [...], \"kwargs\": {...}}",
            "  result  wait for the run's RunFinished on <prefix>.completions and print its result as JSON",
            "          (a result in another payload codec: \"codec NAME: DATA\"); no --timeout: wait for ever",
            "  schemas parse DIR/types/*.avsc, then DIR/*.avsc, into one Avro parser; print the Avro version,",
            "          then NAME FINGERPRINT (16 hex characters, header byte order) for each record schema",
            "",
            "  config  print the Kafka client properties the environment makes (secrets shown as [hidden])",
            "",
            "environment: KFLOW_BOOTSTRAP (127.0.0.1:9092), KFLOW_TOPIC_PREFIX (kflow), and as kflow reads them:",
            "             KFLOW_KAFKA_SECURITY_PROTOCOL, KFLOW_KAFKA_SASL_MECHANISM, KFLOW_KAFKA_USERNAME,",
            "             KFLOW_KAFKA_PASSWORD, KFLOW_KAFKA_CA_FILE, KFLOW_KAFKA_CERT_FILE, KFLOW_KAFKA_KEY_FILE,",
            "             KFLOW_KAFKA_KEY_PASSWORD, KFLOW_KAFKA_CHECK_HOSTNAME",
            "exit status: 0 completed, 1 failed or cancelled (or another error), 2 usage or a bad setting,",
            "             4 Kafka unreachable or refusing the login, topic missing or timeout");

    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS) // numbers are written back as they came
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    /** A bad command line: usage text on stderr, exit status 2. */
    static final class UsageError extends Exception {
        UsageError(String message) {
            super(message);
        }
    }

    private Main() {}

    public static void main(String[] argv) {
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
        PrintStream err = new PrintStream(new FileOutputStream(FileDescriptor.err), true, StandardCharsets.UTF_8);
        System.exit(run(argv, System.getenv(), out, err));
    }

    static int run(String[] argv, Map<String, String> env, PrintStream out, PrintStream err) {
        try {
            if (argv.length == 1 && (argv[0].equals("-h") || argv[0].equals("--help"))) {
                out.println(USAGE_TEXT);
                return OK;
            }
            if (argv.length == 0) {
                throw new UsageError("a command is required: start, result, schemas or config");
            }
            switch (argv[0]) {
                case "start" -> {
                    if (argv.length < 2 || argv.length > 3) {
                        throw new UsageError("start takes WORKFLOW [ARGS_JSON]");
                    }
                    byte[] call = callArguments(argv.length == 3 ? argv[2] : "[]");
                    out.println(new KflowClient(KflowClient.Config.fromEnv(env)).start(argv[1], call));
                    return OK;
                }
                case "result" -> {
                    return result(new KflowClient(KflowClient.Config.fromEnv(env)), argv, out, err);
                }
                case "config" -> {
                    if (argv.length != 1) {
                        throw new UsageError("config takes no arguments");
                    }
                    KflowClient.Config config = KflowClient.Config.fromEnv(env);
                    out.println("bootstrap.servers=" + config.bootstrap());
                    KafkaSecurity.shown(config.security()).forEach(out::println);
                    out.println("topic.prefix=" + config.topicPrefix());
                    return OK;
                }
                case "schemas" -> {
                    if (argv.length != 2) {
                        throw new UsageError("schemas takes DIR (the repository's schemas/)");
                    }
                    SchemaFingerprints.print(new File(argv[1]), out);
                    return OK;
                }
                default -> throw new UsageError("unknown command " + argv[0] + " (start, result, schemas or config)");
            }
        } catch (UsageError e) {
            err.println(SYNOPSIS);
            err.println("kflow-java: error: " + oneLine(e.getMessage()));
            return USAGE;
        } catch (KafkaSecurity.BadSetting e) {
            err.println("kflow-java: error: " + oneLine(e.getMessage()));
            return USAGE;
        } catch (KflowClient.Unavailable e) {
            err.println("kflow-java: error: " + oneLine(e.getMessage()));
            return UNAVAILABLE;
        } catch (Exception e) { // anything else: one line, never a stack trace
            err.println("kflow-java: error: " + e.getClass().getName() + ": " + oneLine(String.valueOf(e.getMessage())));
            return FAILED;
        }
    }

    private static int result(KflowClient client, String[] argv, PrintStream out, PrintStream err) throws Exception {
        String runId = null;
        Duration timeout = null;
        for (int i = 1; i < argv.length; i++) {
            String arg = argv[i];
            if (arg.equals("--timeout") || arg.startsWith("--timeout=")) {
                String value = arg.contains("=") ? arg.substring(arg.indexOf('=') + 1) : (++i < argv.length ? argv[i] : null);
                timeout = seconds(value);
            } else if (arg.startsWith("-") || runId != null) {
                throw new UsageError("unexpected argument " + arg + " (result takes RUN_ID [--timeout SECONDS])");
            } else {
                runId = arg;
            }
        }
        if (runId == null || runId.isEmpty()) {
            throw new UsageError("result takes RUN_ID [--timeout SECONDS]");
        }
        RunFinished finished = client.awaitFinished(runId, timeout);
        String status = finished.getStatus();
        if ("completed".equals(status)) {
            out.println(shown(finished.getResult()));
            return OK;
        }
        ErrorInfo error = finished.getError();
        String why = error == null ? "(no error recorded)" : error.getType() + ": " + error.getMessage();
        err.println("kflow-java: error: run " + finished.getRunId() + " " + status + ": " + oneLine(why));
        return FAILED;
    }

    /** The {@code {"args": [...], "kwargs": {...}}} JSON of a call, compact UTF-8, from the command line's JSON. */
    static byte[] callArguments(String text) throws UsageError {
        JsonNode given;
        try {
            given = JSON.readTree(text);
        } catch (JsonProcessingException e) {
            throw new UsageError("ARGS_JSON is not JSON: " + e.getOriginalMessage());
        }
        ObjectNode call = JSON.createObjectNode();
        if (given != null && given.isArray()) {
            call.set("args", given);
            call.set("kwargs", JSON.createObjectNode());
        } else if (given != null && given.isObject()) {
            JsonNode args = given.path("args");
            JsonNode kwargs = given.path("kwargs");
            for (Iterator<String> names = given.fieldNames(); names.hasNext(); ) {
                String name = names.next();
                if (!name.equals("args") && !name.equals("kwargs")) {
                    throw new UsageError("ARGS_JSON object takes only \"args\" and \"kwargs\", not \"" + name + "\"");
                }
            }
            if (!args.isMissingNode() && !args.isArray() || !kwargs.isMissingNode() && !kwargs.isObject()) {
                throw new UsageError("ARGS_JSON: \"args\" must be an array and \"kwargs\" an object");
            }
            call.set("args", args.isMissingNode() ? JSON.createArrayNode() : args);
            call.set("kwargs", kwargs.isMissingNode() ? JSON.createObjectNode() : kwargs);
        } else {
            throw new UsageError("ARGS_JSON must be a JSON array of arguments or {\"args\": [...], \"kwargs\": {...}}");
        }
        try {
            return JSON.writeValueAsBytes(call);
        } catch (JsonProcessingException e) {
            throw new UsageError("ARGS_JSON: " + e.getOriginalMessage());
        }
    }

    /** A result payload as printed: the JSON itself for codec "json", else "codec NAME: DATA". */
    static String shown(Payload result) {
        if (result == null) {
            return "null";
        }
        ByteBuffer data = result.getData().duplicate();
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(data.duplicate())
                    .toString();
        } catch (CharacterCodingException e) {
            byte[] raw = new byte[data.remaining()];
            data.get(raw);
            return "codec " + result.getCodec() + " (base64): " + Base64.getEncoder().encodeToString(raw);
        }
        return "json".equals(result.getCodec()) ? text : "codec " + result.getCodec() + ": " + text;
    }

    private static Duration seconds(String value) throws UsageError {
        try {
            double seconds = Double.parseDouble(value == null ? "" : value);
            if (!(seconds > 0) || Double.isInfinite(seconds)) {
                throw new NumberFormatException();
            }
            return Duration.ofMillis(Math.max(1, Math.round(seconds * 1000)));
        } catch (NumberFormatException e) {
            throw new UsageError("--timeout takes a positive number of seconds, got " + value);
        }
    }

    private static String oneLine(String text) {
        return text.replaceAll("\\s*\\R\\s*", " ").strip();
    }
}
