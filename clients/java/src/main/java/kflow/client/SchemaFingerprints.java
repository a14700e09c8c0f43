package kflow.client;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;

/**
 * The fingerprints Apache Avro computes for a kflow schema directory, every file parsed by ONE
 * {@link Schema.Parser}: {@code DIR/types/*.avsc} (the shared named types; optional) first, then {@code DIR/*.avsc}
 * (the record types, which reference the shared ones by name); {@code DIR/released/} is not read.
 *
 * <p>The client's {@code schemas DIR} command (Avro 1.12, the client's) and, as a single-file program, the check
 * against another Avro release ({@code clients/java/avro-1.11-check/}) run this same code: it uses nothing but
 * the JDK and Avro API that Avro 1.11 has too.
 */
public final class SchemaFingerprints {

    private SchemaFingerprints() {}

    /**
     * Record name (as in the schema, without namespace) -> fingerprint as 16 lowercase hex characters, for every
     * {@code DIR/*.avsc} in file-name order.
     *
     * @throws IOException a file cannot be read, or {@code dir} holds no {@code *.avsc}
     * @throws org.apache.avro.SchemaParseException a schema is invalid or references a name not defined before it
     */
    public static Map<String, String> of(File dir) throws IOException {
        Schema.Parser parser = new Schema.Parser();
        File types = new File(dir, "types");
        for (File file : types.isDirectory() ? avsc(types) : List.<File>of()) {
            parser.parse(file);
        }
        List<File> records = avsc(dir);
        if (records.isEmpty()) {
            throw new IOException("no *.avsc in " + dir);
        }
        Map<String, String> fingerprints = new LinkedHashMap<>();
        for (File file : records) {
            Schema schema = parser.parse(file);
            fingerprints.put(schema.getName(), hex(SchemaNormalization.parsingFingerprint64(schema)));
        }
        return fingerprints;
    }

    /**
     * A CRC-64-AVRO fingerprint as kflow spells it: its 8 bytes little-endian (the order of the single-object
     * header), each as 2 lowercase hex characters.
     */
    public static String hex(long fingerprint) {
        return String.format("%016x", Long.reverseBytes(fingerprint));
    }

    /** The version of the Apache Avro library on the class path (from its jar's Maven metadata), or "unknown". */
    public static String avroVersion() {
        try (InputStream in = Schema.class.getResourceAsStream("/META-INF/maven/org.apache.avro/avro/pom.properties")) {
            if (in == null) {
                return "unknown";
            }
            Properties props = new Properties();
            props.load(in);
            return props.getProperty("version", "unknown");
        } catch (IOException e) {
            return "unknown";
        }
    }

    /** Prints {@code # Apache Avro VERSION}, then one {@code NAME FINGERPRINT_HEX} line per record schema. */
    public static void print(File dir, PrintStream out) throws IOException {
        Map<String, String> fingerprints = of(dir);
        out.println("# Apache Avro " + avroVersion());
        fingerprints.forEach((name, hex) -> out.println(name + " " + hex));
    }

    /**
     * As a single-file program ({@code java -cp AVRO_CLASSPATH SchemaFingerprints.java DIR}): prints as
     * {@link #print}; exit status 0, 1 (one line on stderr) when a schema does not load, 2 on bad arguments.
     */
    public static void main(String[] argv) {
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        if (argv.length != 1) {
            System.err.println("usage: java -cp AVRO_CLASSPATH SchemaFingerprints.java SCHEMAS_DIR");
            System.exit(2);
        }
        try {
            print(new File(argv[0]), out);
        } catch (Exception e) {
            System.err.println("kflow-java: error: " + e.getClass().getName() + ": "
                    + String.valueOf(e.getMessage()).replaceAll("\\s*\\R\\s*", " ").strip());
            System.exit(1);
        }
    }

    private static List<File> avsc(File dir) throws IOException {
        if (!dir.isDirectory()) {
            throw new IOException(dir + " is not a directory");
        }
        File[] found = dir.listFiles((d, name) -> name.endsWith(".avsc"));
        List<File> files = new ArrayList<>(Arrays.asList(found == null ? new File[0] : found));
        files.sort(null); // file-name order: the same on every machine
        return files;
    }
}
