package kflow.client;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * How the Kafka client connects: kflow's {@code KFLOW_KAFKA_*} variables (the ones the Python side reads,
 * docs/api.md "Configuration") as kafka-clients properties.
 *
 * <ul>
 *   <li>{@code KFLOW_KAFKA_SECURITY_PROTOCOL} (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL): {@code security.protocol};
 *   <li>{@code KFLOW_KAFKA_SASL_MECHANISM} (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; PLAIN when unset) with
 *       {@code KFLOW_KAFKA_USERNAME} / {@code KFLOW_KAFKA_PASSWORD}: {@code sasl.mechanism} and
 *       {@code sasl.jaas.config} ({@code PlainLoginModule} or {@code ScramLoginModule});
 *   <li>{@code KFLOW_KAFKA_CA_FILE}: {@code ssl.truststore.type=PEM}, {@code ssl.truststore.location} (unset: the
 *       JVM's authorities);
 *   <li>{@code KFLOW_KAFKA_CERT_FILE} (+ {@code KFLOW_KAFKA_KEY_FILE}, {@code KFLOW_KAFKA_KEY_PASSWORD}) for mTLS:
 *       {@code ssl.keystore.type=PEM} with the chain and the PKCS#8 key read from the files
 *       ({@code ssl.keystore.certificate.chain}, {@code ssl.keystore.key}), or {@code ssl.keystore.location} when the
 *       key is in the certificate file; {@code ssl.key.password};
 *   <li>{@code KFLOW_KAFKA_CHECK_HOSTNAME=false}: {@code ssl.endpoint.identification.algorithm=""}.
 * </ul>
 */
final class KafkaSecurity {

    static final List<String> PROTOCOLS = List.of("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL");
    static final List<String> MECHANISMS = List.of("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512");

    /** Properties whose values are secrets: never printed. */
    static final Set<String> SECRET = Set.of("sasl.jaas.config", "ssl.keystore.key", "ssl.key.password");

    /** A variable with a value the client cannot use (exit status 2). */
    static final class BadSetting extends Exception {
        BadSetting(String message) {
            super(message);
        }
    }

    private KafkaSecurity() {}

    /** The kafka-clients properties for the {@code KFLOW_KAFKA_*} variables of {@code env}. */
    static Map<String, String> properties(Map<String, String> env) throws BadSetting, KflowClient.Unavailable {
        String protocol = upper(env, "KFLOW_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT");
        if (!PROTOCOLS.contains(protocol)) {
            throw new BadSetting("KFLOW_KAFKA_SECURITY_PROTOCOL must be one of " + String.join(", ", PROTOCOLS)
                    + ", got " + protocol);
        }
        boolean sasl = protocol.startsWith("SASL_");
        boolean tls = protocol.endsWith("SSL");
        String mechanism = upper(env, "KFLOW_KAFKA_SASL_MECHANISM", null);
        String username = value(env, "KFLOW_KAFKA_USERNAME");
        String password = value(env, "KFLOW_KAFKA_PASSWORD");
        String ca = path(env, "KFLOW_KAFKA_CA_FILE");
        String cert = path(env, "KFLOW_KAFKA_CERT_FILE");
        String key = path(env, "KFLOW_KAFKA_KEY_FILE");
        String keyPassword = value(env, "KFLOW_KAFKA_KEY_PASSWORD");
        unused(!sasl, protocol, "SASL_* protocols use it", new String[][] {
            {"KFLOW_KAFKA_SASL_MECHANISM", mechanism}, {"KFLOW_KAFKA_USERNAME", username},
            {"KFLOW_KAFKA_PASSWORD", password}});
        unused(!tls, protocol, "SSL and SASL_SSL use it", new String[][] {
            {"KFLOW_KAFKA_CA_FILE", ca}, {"KFLOW_KAFKA_CERT_FILE", cert}, {"KFLOW_KAFKA_KEY_FILE", key},
            {"KFLOW_KAFKA_KEY_PASSWORD", keyPassword}});
        Map<String, String> props = new TreeMap<>();
        props.put("security.protocol", protocol);
        if (sasl) {
            String chosen = mechanism == null ? "PLAIN" : mechanism;
            if (!MECHANISMS.contains(chosen)) {
                throw new BadSetting("KFLOW_KAFKA_SASL_MECHANISM must be one of " + String.join(", ", MECHANISMS)
                        + ", got " + chosen);
            }
            if (username == null || password == null) {
                throw new BadSetting("KFLOW_KAFKA_SECURITY_PROTOCOL=" + protocol
                        + " needs KFLOW_KAFKA_USERNAME and KFLOW_KAFKA_PASSWORD");
            }
            String module = chosen.equals("PLAIN")
                    ? "org.apache.kafka.common.security.plain.PlainLoginModule"
                    : "org.apache.kafka.common.security.scram.ScramLoginModule";
            props.put("sasl.mechanism", chosen);
            props.put("sasl.jaas.config", module + " required username=\"" + quoted(username) + "\" password=\""
                    + quoted(password) + "\";");
        }
        if (tls) {
            if (ca != null) {
                props.put("ssl.truststore.type", "PEM");
                props.put("ssl.truststore.location", ca);
            }
            if (cert == null && (key != null || keyPassword != null)) {
                throw new BadSetting("KFLOW_KAFKA_KEY_FILE / KFLOW_KAFKA_KEY_PASSWORD set without KFLOW_KAFKA_CERT_FILE");
            }
            if (cert != null) {
                props.put("ssl.keystore.type", "PEM");
                if (key == null) { // the key and the chain in one file
                    props.put("ssl.keystore.location", cert);
                } else {
                    props.put("ssl.keystore.certificate.chain", read(cert, "KFLOW_KAFKA_CERT_FILE"));
                    props.put("ssl.keystore.key", read(key, "KFLOW_KAFKA_KEY_FILE"));
                }
                if (keyPassword != null) {
                    props.put("ssl.key.password", keyPassword);
                }
            }
            String check = value(env, "KFLOW_KAFKA_CHECK_HOSTNAME");
            if (check != null && !flag(check)) {
                props.put("ssl.endpoint.identification.algorithm", "");
            }
        }
        return props;
    }

    /** {@code props} as {@code key=value} lines, sorted, every secret shown as {@code [hidden]}. */
    static List<String> shown(Map<String, String> props) {
        List<String> lines = new ArrayList<>();
        for (Map.Entry<String, String> entry : new TreeMap<>(props).entrySet()) {
            String value = entry.getValue();
            if (entry.getKey().equals("sasl.jaas.config")) {
                value = value.replaceAll("password=\"(\\\\.|[^\"\\\\])*\"", "password=[hidden]");
            } else if (SECRET.contains(entry.getKey())) {
                value = "[hidden]";
            }
            lines.add(entry.getKey() + "=" + value);
        }
        return lines;
    }

    /** Refuses the first of {@code settings} (name, value; null: unset) that is set when {@code refused}. */
    private static void unused(boolean refused, String protocol, String why, String[][] settings)
            throws BadSetting {
        if (!refused) {
            return;
        }
        for (String[] setting : settings) {
            if (setting[1] != null) {
                throw new BadSetting(setting[0] + " is set, but KFLOW_KAFKA_SECURITY_PROTOCOL is " + protocol + " ("
                        + why + ")");
            }
        }
    }

    private static boolean flag(String text) throws BadSetting {
        switch (text.trim().toLowerCase(Locale.ROOT)) {
            case "", "true", "yes", "on", "1" -> {
                return true;
            }
            case "false", "no", "off", "0" -> {
                return false;
            }
            default -> throw new BadSetting("KFLOW_KAFKA_CHECK_HOSTNAME must be true or false, got " + text);
        }
    }

    private static String value(Map<String, String> env, String name) {
        String value = env.get(name);
        return value == null || value.isEmpty() ? null : value;
    }

    private static String upper(Map<String, String> env, String name, String fallback) {
        String value = env.get(name);
        return value == null || value.isBlank() ? fallback : value.trim().toUpperCase(Locale.ROOT);
    }

    private static String path(Map<String, String> env, String name) {
        String value = env.get(name);
        if (value == null || value.isBlank()) {
            return null;
        }
        String trimmed = value.trim();
        return trimmed.startsWith("~/") ? System.getProperty("user.home") + trimmed.substring(1) : trimmed;
    }

    /** A PEM file's text; one that cannot be read is a connection failure (exit 4), as for the CA file. */
    private static String read(String file, String name) throws KflowClient.Unavailable {
        try {
            return Files.readString(Path.of(file), StandardCharsets.US_ASCII);
        } catch (IOException e) {
            throw new KflowClient.Unavailable(
                    "cannot use " + name + " " + file + ": " + e.getClass().getSimpleName() + ": " + e.getMessage());
        }
    }

    /** A JAAS option value between double quotes: backslashes and quotes escaped. */
    private static String quoted(String value) {
        return value.replace("\\", "\\\\").replace("\"", "\\\"");
    }
}
