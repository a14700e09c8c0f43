package kflow.client;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.function.Supplier;

import kflow.ErrorInfo;
import kflow.Payload;
import kflow.RunFinished;
import kflow.StartWorkflow;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.util.ClassSecurityValidator;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.AuthenticationException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.utils.Utils;

/**
 * Starts kflow runs and reads their results through Kafka alone, as any client of kflow's wire contract does.
 *
 * <p>Every record is Avro single-object encoded ({@code C3 01}, the 8-byte little-endian CRC-64-AVRO fingerprint
 * of the writer schema, the binary body: what the generated classes' {@code toByteBuffer()} and
 * {@code getDecoder()} do) and keyed by the run id as raw UTF-8 bytes, so Kafka's default partitioner
 * (murmur2 of the key) puts all of a run's records on one partition number on every topic.
 *
 * <p>Before its first write, a process publishes the writer schema it writes with to {@code <prefix>.schemas}, as
 * every kflow process does (docs/evolution.md): so that a reader of an older release can resolve its records.
 */
public final class KflowClient {

    /**
     * Where Kafka is, how to connect to it and which topics to use: {@code KFLOW_BOOTSTRAP}, the
     * {@code KFLOW_KAFKA_*} security variables as kafka-clients properties ({@link KafkaSecurity}),
     * {@code KFLOW_TOPIC_PREFIX}.
     */
    public record Config(String bootstrap, String topicPrefix, Map<String, String> security) {

        /** Over PLAINTEXT. */
        public Config(String bootstrap, String topicPrefix) {
            this(bootstrap, topicPrefix, Map.of("security.protocol", "PLAINTEXT"));
        }

        public Config {
            security = Map.copyOf(security);
        }

        /**
         * The configuration from the environment, with kflow's defaults.
         *
         * @throws KafkaSecurity.BadSetting a {@code KFLOW_KAFKA_*} variable the client cannot use (exit status 2)
         * @throws Unavailable a certificate or key file that cannot be read (exit status 4)
         */
        public static Config fromEnv(Map<String, String> env) throws KafkaSecurity.BadSetting, Unavailable {
            return new Config(
                    orDefault(env.get("KFLOW_BOOTSTRAP"), "127.0.0.1:9092"),
                    orDefault(env.get("KFLOW_TOPIC_PREFIX"), "kflow"),
                    KafkaSecurity.properties(env));
        }

        /** The record's text without a secret in it. */
        @Override
        public String toString() {
            return "Config[bootstrap=" + bootstrap + ", topicPrefix=" + topicPrefix + ", security="
                    + KafkaSecurity.shown(security) + "]";
        }

        String inbox() {
            return topicPrefix + ".inbox";
        }

        String completions() {
            return topicPrefix + ".completions";
        }

        String schemas() {
            return topicPrefix + ".schemas";
        }

        private static String orDefault(String value, String fallback) {
            return value == null || value.isBlank() ? fallback : value.trim();
        }
    }

    /** Kafka did not answer in time, a topic is missing, or the run did not finish within the timeout. */
    public static final class Unavailable extends Exception {
        Unavailable(String message) {
            super(message);
        }
    }

    static {
        // Avro 1.12 reads a record into a generated class only when that class is trusted: ours are.
        ClassSecurityValidator.setGlobal(ClassSecurityValidator.composite(
                ClassSecurityValidator.getGlobal(),
                ClassSecurityValidator.builder().add(RunFinished.class).add(Payload.class).add(ErrorInfo.class).build()));
    }

    /** How long a request waits for Kafka's metadata (an unreachable broker ends here). */
    static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(15);

    private static final Duration POLL = Duration.ofMillis(500);

    /** {@code <prefix>.schemas}: every record on this partition (one read of one partition sees them all). */
    private static final int SCHEMAS_PARTITION = 0;

    /** "bootstrap topic fingerprint" of every writer schema this process has published: each at most once. */
    private static final Set<String> PUBLISHED = ConcurrentHashMap.newKeySet();

    private final Config config;

    public KflowClient(Config config) {
        this.config = config;
    }

    /** A new run id: a random UUID as 32 lowercase hex characters, as kflow's Python client makes them. */
    public static String newRunId() {
        return UUID.randomUUID().toString().replace("-", "");
    }

    /** The partition Kafka's default partitioner picks for a run's records: murmur2(key) % partitions. */
    public static int partitionOf(String runId, int partitions) {
        return Utils.toPositive(Utils.murmur2(runId.getBytes(StandardCharsets.UTF_8))) % partitions;
    }

    /**
     * Starts a run of {@code workflow}: sends one {@code StartWorkflow} to {@code <prefix>.inbox}; returns its run id.
     *
     * @param argsJson the call's arguments as compact UTF-8 JSON {@code {"args": [...], "kwargs": {...}}}
     *     (the "json" payload codec)
     */
    public String start(String workflow, byte[] argsJson) throws Unavailable, IOException {
        String runId = newRunId();
        StartWorkflow record = StartWorkflow.newBuilder()
                .setRunId(runId)
                .setWorkflowName(workflow)
                .setArgs(Payload.newBuilder().setCodec("json").setData(ByteBuffer.wrap(argsJson)).build())
                .setRequestedAt(System.currentTimeMillis())
                .setDepth(0)
                .build(); // idempotency_key, parent_run_id, parent_position, continued_from: their default, null
        send(config.inbox(), runId, bytes(record.toByteBuffer()), StartWorkflow.getClassSchema());
        return runId;
    }

    /**
     * The key of {@code schema} on {@code <prefix>.schemas}: its CRC-64-AVRO fingerprint (of the Parsing Canonical
     * Form) as 16 lowercase hex characters, the 8 bytes in the order of the single-object header (little-endian).
     */
    public static String schemaKey(Schema schema) {
        return SchemaFingerprints.hex(SchemaNormalization.parsingFingerprint64(schema));
    }

    /**
     * Waits for the {@code RunFinished} of {@code runId} on {@code <prefix>.completions} and returns it; a run that
     * continued as new is followed to the last run of its chain.
     *
     * @param timeout how long to wait, or null for no limit (Kafka's metadata is still waited for at most
     *     {@link #CONNECT_TIMEOUT})
     */
    public RunFinished awaitFinished(String runId, Duration timeout) throws Unavailable, IOException {
        long deadline = timeout == null ? 0 : System.nanoTime() + timeout.toNanos(); // compared only with a timeout
        Duration connect = timeout != null && timeout.compareTo(CONNECT_TIMEOUT) < 0 ? timeout : CONNECT_TIMEOUT;
        Properties props = common();
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"); // only committed transactions
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false"); // no group: partitions are assigned
        props.put(ConsumerConfig.ALLOW_AUTO_CREATE_TOPICS_CONFIG, "false");
        props.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, String.valueOf(connect.toMillis()));
        String topic = config.completions();
        try (KafkaConsumer<byte[], byte[]> consumer = created(() -> new KafkaConsumer<>(props))) {
            int partitions = partitionCount(consumer, topic, connect);
            byte[] key = follow(consumer, topic, runId, partitions);
            while (true) {
                long left = timeout == null ? POLL.toNanos() : Math.min(deadline - System.nanoTime(), POLL.toNanos());
                if (left <= 0) {
                    throw new Unavailable("run " + runId + " did not finish within " + seconds(timeout) + " s");
                }
                boolean switched = false;
                for (ConsumerRecord<byte[], byte[]> rec : consumer.poll(Duration.ofNanos(left))) {
                    if (switched || !Arrays.equals(rec.key(), key)) {
                        continue; // another run's completion (or one read before following the chain)
                    }
                    RunFinished finished = RunFinished.getDecoder().decode(rec.value());
                    String next = finished.getNextRunId();
                    if (!"continued_as_new".equals(finished.getStatus()) || next == null || next.isEmpty()) {
                        return finished;
                    }
                    key = follow(consumer, topic, next, partitions);
                    switched = true;
                }
            }
        } catch (org.apache.kafka.common.errors.TimeoutException e) {
            throw unreachable(e);
        } catch (AuthenticationException e) {
            throw rejected(e);
        }
    }

    /**
     * Sends {@code value} keyed by {@code runId} to {@code topic}; first, once per process, publishes its
     * {@code writer} schema to {@code <prefix>.schemas} (creating that topic like kflow when it is missing).
     */
    private void send(String topic, String runId, byte[] value, Schema writer) throws Unavailable {
        String published = config.bootstrap() + " " + config.schemas() + " " + schemaKey(writer);
        boolean publish = !PUBLISHED.contains(published);
        if (publish) {
            ensureSchemasTopic();
        }
        Properties props = common();
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.ACKS_CONFIG, "all"); // on every in-sync replica before it counts as sent
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true"); // a retried send is written once
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, String.valueOf(CONNECT_TIMEOUT.toMillis()));
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, String.valueOf(CONNECT_TIMEOUT.toMillis()));
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, String.valueOf(2 * CONNECT_TIMEOUT.toMillis()));
        // No partitioner configured: Kafka's default hashes the key with murmur2, as kflow expects.
        KafkaProducer<byte[], byte[]> producer = created(() -> new KafkaProducer<>(props));
        String target = topic;
        try {
            if (publish) { // acknowledged (acks=all) before the record that needs it is sent
                target = config.schemas();
                byte[] key = schemaKey(writer).getBytes(StandardCharsets.US_ASCII);
                byte[] json = writer.toString().getBytes(StandardCharsets.UTF_8);
                producer.send(new ProducerRecord<>(target, SCHEMAS_PARTITION, key, json)).get();
                PUBLISHED.add(published);
                target = topic;
            }
            producer.send(new ProducerRecord<>(topic, runId.getBytes(StandardCharsets.UTF_8), value)).get();
        } catch (ExecutionException e) {
            throw failed("cannot send to " + target, e);
        } catch (org.apache.kafka.common.errors.TimeoutException e) {
            throw unreachable(e);
        } catch (AuthenticationException e) {
            throw rejected(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new Unavailable("interrupted while sending to " + target);
        } finally {
            producer.close(Duration.ofSeconds(5));
        }
    }

    /**
     * Creates {@code <prefix>.schemas} when it is missing, as kflow's processes do: alongside {@code <prefix>.inbox}
     * (its partition count and replication factor), compacted, without time retention. Checked with an admin
     * client first: a producer's send to a missing topic makes a broker with {@code auto.create.topics.enable}
     * create it with the default (deleting, time-retained) config. A missing {@code .inbox} is reported, not made.
     */
    private void ensureSchemasTopic() throws Unavailable {
        Properties props = common();
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, String.valueOf(CONNECT_TIMEOUT.toMillis()));
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, String.valueOf(CONNECT_TIMEOUT.toMillis()));
        String inbox = config.inbox();
        String schemas = config.schemas();
        Admin admin = created(() -> Admin.create(props));
        try {
            Set<String> names = admin.listTopics().names().get();
            if (!names.contains(inbox)) {
                throw new Unavailable("topic " + inbox + " does not exist (kflow topics create makes it)");
            }
            if (names.contains(schemas)) {
                return;
            }
            TopicDescription companion = admin.describeTopics(List.of(inbox)).allTopicNames().get().get(inbox);
            int replicas = companion.partitions().stream().mapToInt(p -> p.replicas().size()).min().orElse(1);
            NewTopic topic = new NewTopic(schemas, companion.partitions().size(), (short) replicas).configs(Map.of(
                    "cleanup.policy", "compact",
                    "retention.ms", "-1",
                    "min.insync.replicas", String.valueOf(Math.max(1, replicas - 1))));
            try {
                admin.createTopics(List.of(topic)).all().get();
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) { // else: a concurrent creator was first
                    throw e;
                }
            }
        } catch (ExecutionException e) {
            throw failed("cannot check or create topic " + schemas, e);
        } catch (org.apache.kafka.common.errors.TimeoutException e) {
            throw unreachable(e);
        } catch (AuthenticationException e) {
            throw rejected(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new Unavailable("interrupted while checking topic " + schemas);
        } finally {
            admin.close(Duration.ofSeconds(5));
        }
    }

    private Unavailable failed(String what, ExecutionException e) {
        Throwable cause = e.getCause() == null ? e : e.getCause();
        if (cause instanceof org.apache.kafka.common.errors.TimeoutException) {
            return unreachable(cause);
        }
        if (cause instanceof AuthenticationException) {
            return rejected(cause);
        }
        return new Unavailable(what + ": " + cause.getClass().getSimpleName() + ": " + cause.getMessage());
    }

    private static int partitionCount(KafkaConsumer<byte[], byte[]> consumer, String topic, Duration timeout)
            throws Unavailable {
        List<PartitionInfo> infos = consumer.partitionsFor(topic, timeout);
        if (infos == null || infos.isEmpty()) {
            throw new Unavailable("topic " + topic + " does not exist (kflow topics create makes it)");
        }
        return infos.size();
    }

    /** Reads the partition of {@code runId} from its beginning; the key its records carry. */
    private static byte[] follow(KafkaConsumer<byte[], byte[]> consumer, String topic, String runId, int partitions) {
        TopicPartition tp = new TopicPartition(topic, partitionOf(runId, partitions));
        consumer.assign(List.of(tp));
        consumer.seekToBeginning(List.of(tp));
        return runId.getBytes(StandardCharsets.UTF_8);
    }

    private Properties common() {
        Properties props = new Properties();
        props.put("bootstrap.servers", config.bootstrap());
        props.put("client.id", "kflow-java");
        props.putAll(config.security());
        return props;
    }

    /** A Kafka client made by {@code make}; one that cannot be made (a TLS file missing or malformed) is unavailable. */
    private <T> T created(Supplier<T> make) throws Unavailable {
        try {
            return make.get();
        } catch (KafkaException e) {
            Throwable root = e;
            while (root.getCause() != null) {
                root = root.getCause();
            }
            throw new Unavailable("cannot make a Kafka client for " + config.bootstrap() + ": " + e.getMessage() + ": "
                    + root.getClass().getSimpleName() + ": " + root.getMessage());
        }
    }

    /** Kafka answered but refused the login (SASL) or the TLS handshake failed. */
    private Unavailable rejected(Throwable cause) {
        return new Unavailable("Kafka at " + config.bootstrap() + " refused the connection (authentication): "
                + cause.getClass().getSimpleName() + ": " + cause.getMessage());
    }

    private Unavailable unreachable(Throwable cause) {
        return new Unavailable("Kafka unreachable at " + config.bootstrap() + " (or topics missing under prefix "
                + config.topicPrefix() + "): " + cause.getMessage());
    }

    private static String seconds(Duration timeout) {
        return timeout.toMillis() % 1000 == 0
                ? String.valueOf(timeout.toSeconds())
                : String.valueOf(timeout.toMillis() / 1000.0);
    }

    private static byte[] bytes(ByteBuffer buffer) {
        byte[] out = new byte[buffer.remaining()];
        buffer.get(out);
        return out;
    }
}
