import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Kafka Java client compatibility check, run by scripts/compat.sh.
 *
 * <pre>
 *   Compat admin     BOOTSTRAP TOPIC        create (with configs) / describe configs /
 *                                           create partitions / delete
 *   Compat roundtrip BOOTSTRAP TOPIC [N]    3-partition topic; idempotent acks=all producer
 *                                           sends N keyed records with headers; a consumer in
 *                                           assign mode (no group.id) reads them back and
 *                                           checks count, per-partition order and content
 *   Compat idle-producer BOOTSTRAP TOPIC IDLE_MS
 *                                           an idempotent producer sends 3 records, idles
 *                                           IDLE_MS (past the broker's producer.id.expiration.ms),
 *                                           sends 3 more; a consumer reads exactly the 6, in order
 *   Compat transactions BOOTSTRAP TOPIC refused|supported
 *                                           a producer with transactional.id: refused, its
 *                                           initTransactions() must throw
 *                                           TransactionalIdAuthorizationException (fatal, at
 *                                           once, not a timeout); supported, it commits one
 *                                           transaction (validates the step against Kafka)
 * </pre>
 *
 * Progress goes to stderr. On success prints one summary line and exits 0; on any mismatch
 * prints "FAIL: reason" and exits 1.
 */
public final class Compat {
    /** Time to wait for the broker in one operation (COMPAT_CLIENT_TIMEOUT seconds, default 20). */
    private static final Duration TIMEOUT = Duration.ofSeconds(
        Long.parseLong(System.getenv().getOrDefault("COMPAT_CLIENT_TIMEOUT", "20")));
    /** Client request timeout: half the operation timeout. */
    private static final String REQUEST_MS = Long.toString(TIMEOUT.toMillis() / 2);

    static final class CheckFailed extends RuntimeException {
        CheckFailed(String message) {
            super(message);
        }
    }

    public static void main(String[] args) {
        if (args.length < 3) {
            System.err.println("usage: Compat admin|roundtrip|transactions BOOTSTRAP TOPIC [N|refused|supported]");
            System.exit(2);
        }
        String mode = args[0];
        String bootstrap = args[1];
        String topic = args[2];
        try {
            String summary;
            switch (mode) {
                case "admin":
                    summary = admin(bootstrap, topic);
                    break;
                case "roundtrip":
                    int n = args.length > 3 ? Integer.parseInt(args[3]) : 10_000;
                    summary = roundtrip(bootstrap, topic, n);
                    break;
                case "idle-producer":
                    summary = idleProducer(bootstrap, topic, Long.parseLong(args[3]));
                    break;
                case "transactions":
                    summary = transactions(bootstrap, topic, args.length > 3 && args[3].equals("supported"));
                    break;
                default:
                    System.err.println("unknown mode " + mode);
                    System.exit(2);
                    return;
            }
            System.out.println(summary);
            System.exit(0);
        } catch (CheckFailed e) {
            System.out.println("FAIL: " + e.getMessage());
        } catch (ExecutionException e) {
            System.out.println("FAIL: " + describe(e.getCause()));
        } catch (Exception e) {
            System.out.println("FAIL: " + describe(e));
        }
        System.exit(1);
    }

    private static String describe(Throwable t) {
        if (t instanceof java.util.concurrent.TimeoutException && t.getMessage() == null) {
            return "no answer within " + TIMEOUT.toSeconds() + "s";
        }
        return t.getClass().getSimpleName() + ": " + t.getMessage();
    }

    /** Wait for an admin/producer future; any failure becomes a CheckFailed naming the call. */
    private static <T> T get(Future<T> future, String what) throws InterruptedException {
        try {
            return future.get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            throw new CheckFailed(what + ": " + describe(e.getCause()));
        } catch (java.util.concurrent.TimeoutException e) {
            throw new CheckFailed(what + ": " + describe(e));
        }
    }

    private static void progress(String message) {
        System.err.println("[java] " + message);
    }

    private static void check(boolean condition, String message) {
        if (!condition) {
            throw new CheckFailed(message);
        }
    }

    private static void await(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (System.nanoTime() < deadline) {
            if (condition.getAsBoolean()) {
                return;
            }
            Thread.sleep(200);
        }
        throw new CheckFailed("timed out after " + TIMEOUT.toSeconds() + "s waiting for " + what);
    }

    private static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "sluice-compat-java-admin");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, REQUEST_MS);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, Long.toString(TIMEOUT.toMillis()));
        return Admin.create(p);
    }

    /** Partition count as the cluster reports it, or -1 if the topic is unknown. */
    private static int partitionCount(Admin admin, String topic) {
        try {
            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames()
                .get(TIMEOUT.toSeconds(), TimeUnit.SECONDS).get(topic);
            boolean allLed = d.partitions().stream().allMatch(p -> p.leader() != null && p.leader().id() >= 0);
            return allLed ? d.partitions().size() : -1;
        } catch (ExecutionException e) {
            if (e.getCause() instanceof UnknownTopicOrPartitionException) {
                return -1;
            }
            throw new CheckFailed("describeTopics(" + topic + "): " + describe(e.getCause()));
        } catch (Exception e) {
            throw new CheckFailed("describeTopics(" + topic + "): " + describe(e));
        }
    }

    private static Set<String> topicNames(Admin admin) {
        try {
            return admin.listTopics().names().get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            throw new CheckFailed("listTopics: " + describe(e.getCause()));
        } catch (Exception e) {
            throw new CheckFailed("listTopics: " + describe(e));
        }
    }

    static String admin(String bootstrap, String topic) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            Map<String, String> configs = Map.of(
                "retention.ms", "3600000",
                "max.message.bytes", "2097152",
                "cleanup.policy", "delete");
            progress("createTopics " + topic + " partitions=1 configs=" + configs);
            get(admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1).configs(configs))).all(),
                "createTopics");
            await("topic " + topic + " with 1 partition in metadata", () -> partitionCount(admin, topic) == 1);
            check(topicNames(admin).contains(topic), "listTopics does not include " + topic);

            progress("describeConfigs " + topic);
            ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            Config config = get(admin.describeConfigs(List.of(resource)).all(), "describeConfigs").get(resource);
            check(config != null, "describeConfigs returned no entry for " + topic);
            for (Map.Entry<String, String> want : configs.entrySet()) {
                ConfigEntry got = config.get(want.getKey());
                check(got != null, "describeConfigs: no entry for " + want.getKey());
                check(want.getValue().equals(got.value()),
                    "describeConfigs: " + want.getKey() + "=" + got.value() + ", want " + want.getValue());
                check(got.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "describeConfigs: " + want.getKey() + " source=" + got.source() + ", want DYNAMIC_TOPIC_CONFIG");
            }
            check(config.entries().size() > configs.size(),
                "describeConfigs: only " + config.entries().size() + " entries (defaults missing)");

            progress("createPartitions " + topic + " -> 3");
            get(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all(), "createPartitions");
            await("topic " + topic + " with 3 partitions in metadata", () -> partitionCount(admin, topic) == 3);

            progress("deleteTopics " + topic);
            get(admin.deleteTopics(List.of(topic)).all(), "deleteTopics");
            await("topic " + topic + " to disappear from listTopics", () -> !topicNames(admin).contains(topic));
        }
        return "admin: create(configs)/describeConfigs/createPartitions(1->3)/delete ok on " + topic;
    }

    private static final class Sent {
        final int seq;
        final String key;
        final String value;
        final Future<RecordMetadata> future;

        Sent(int seq, String key, String value, Future<RecordMetadata> future) {
            this.seq = seq;
            this.key = key;
            this.value = value;
            this.future = future;
        }
    }

    private static final class Expected {
        final int seq;
        final String key;
        final String value;
        final long offset;

        Expected(int seq, String key, String value, long offset) {
            this.seq = seq;
            this.key = key;
            this.value = value;
            this.offset = offset;
        }
    }

    private static String header(Iterable<Header> headers, String key) {
        String found = null;
        for (Header h : headers) {
            if (h.key().equals(key)) {
                check(found == null, "duplicate header " + key);
                found = h.value() == null ? null : new String(h.value(), StandardCharsets.UTF_8);
            }
        }
        return found;
    }

    static String idleProducer(String bootstrap, String topic, long idleMs) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            get(admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all(), "createTopics");
        }
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "0");
        pp.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, REQUEST_MS);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
            for (int i = 0; i < 3; i++) {
                get(producer.send(new ProducerRecord<>(topic, 0, "k", "r" + i)), "send r" + i);
            }
            progress("idle for " + idleMs + " ms");
            Thread.sleep(idleMs);
            for (int i = 3; i < 6; i++) {
                get(producer.send(new ProducerRecord<>(topic, 0, "k", "r" + i)), "send r" + i);
            }
        }
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        List<String> got = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (got.size() < 6 && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    got.add(r.value());
                }
            }
            got.addAll(consumer.poll(Duration.ofMillis(500)).records(tp).stream().map(ConsumerRecord::value).toList());
        }
        check(got.equals(List.of("r0", "r1", "r2", "r3", "r4", "r5")), "read back " + got);
        return "6 records exactly once, in order, across the producer's expiry";
    }

    static String transactions(String bootstrap, String topic, boolean supported) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            get(admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all(), "createTopics");
        }
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "sluice-compat-tx");
        pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, Long.toString(TIMEOUT.toMillis()));
        pp.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, REQUEST_MS);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
            progress("initTransactions");
            try {
                producer.initTransactions();
            } catch (org.apache.kafka.common.errors.TransactionalIdAuthorizationException e) {
                check(!supported, "initTransactions: " + describe(e));
                return "initTransactions refused at once: " + e.getMessage();
            } catch (org.apache.kafka.common.errors.TimeoutException e) {
                throw new CheckFailed("initTransactions: no answer within " + TIMEOUT.toSeconds()
                    + "s (the broker must refuse at once, not let the client retry)");
            }
            check(supported, "initTransactions succeeded, but this broker has no transactions");
            producer.beginTransaction();
            get(producer.send(new ProducerRecord<>(topic, "k", "v")), "send");
            producer.commitTransaction();
            return "one transaction committed";
        }
    }

    static String roundtrip(String bootstrap, String topic, int n) throws Exception {
        final int partitions = 3;
        try (Admin admin = admin(bootstrap)) {
            progress("createTopics " + topic + " partitions=" + partitions);
            get(admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all(), "createTopics");
            await("topic " + topic + " with " + partitions + " partitions in metadata",
                () -> partitionCount(admin, topic) == partitions);

            // Produce: acks=all, idempotence left at its default (on since Kafka 3.0).
            Properties pp = new Properties();
            pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            pp.put(ProducerConfig.CLIENT_ID_CONFIG, "sluice-compat-java-producer");
            pp.put(ProducerConfig.ACKS_CONFIG, "all");
            pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
            pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, Long.toString(TIMEOUT.toMillis()));
            pp.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, REQUEST_MS);
            pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, Long.toString(TIMEOUT.toMillis()));
            pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            List<Sent> sent = new ArrayList<>(n);
            progress("producing " + n + " records");
            try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
                for (int i = 0; i < n; i++) {
                    String key = "key-" + (i % 1000);
                    String value = "value-" + i + "-" + "x".repeat(i % 97);
                    RecordHeaders headers = new RecordHeaders();
                    headers.add("seq", Integer.toString(i).getBytes(StandardCharsets.UTF_8));
                    headers.add("client", "java".getBytes(StandardCharsets.UTF_8));
                    sent.add(new Sent(i, key, value,
                        producer.send(new ProducerRecord<>(topic, null, key, value, headers))));
                }
                producer.flush();
            }

            Map<Integer, List<Expected>> expected = new HashMap<>();
            for (Sent s : sent) {
                RecordMetadata md = get(s.future, "produce of record " + s.seq);
                check(md.hasOffset(), "record " + s.seq + " acknowledged without an offset");
                List<Expected> list = expected.computeIfAbsent(md.partition(), k -> new ArrayList<>());
                if (!list.isEmpty()) {
                    Expected prev = list.get(list.size() - 1);
                    check(md.offset() > prev.offset, "partition " + md.partition() + ": record " + s.seq
                        + " got offset " + md.offset() + " after record " + prev.seq + " at " + prev.offset
                        + " (send order not preserved)");
                }
                list.add(new Expected(s.seq, s.key, s.value, md.offset()));
            }
            check(expected.size() == partitions,
                "keyed records landed in " + expected.size() + " partitions, want " + partitions);

            // Consume back: assign mode, no group.id, nothing committed.
            Properties cp = new Properties();
            cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            cp.put(ConsumerConfig.CLIENT_ID_CONFIG, "sluice-compat-java-consumer");
            cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            cp.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, REQUEST_MS);
            cp.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, Long.toString(TIMEOUT.toMillis()));
            cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < partitions; p++) {
                tps.add(new TopicPartition(topic, p));
            }
            Map<Integer, Integer> next = new HashMap<>();
            int consumed = 0;
            progress("consuming " + n + " records (assign, no group)");
            try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp)) {
                consumer.assign(tps);
                consumer.seekToBeginning(tps);
                Map<TopicPartition, Long> end = consumer.endOffsets(tps, TIMEOUT);
                for (TopicPartition tp : tps) {
                    List<Expected> list = expected.getOrDefault(tp.partition(), List.of());
                    long want = list.isEmpty() ? 0 : list.get(list.size() - 1).offset + 1;
                    check(end.get(tp) != null && end.get(tp) == want,
                        tp + ": end offset " + end.get(tp) + ", want " + want);
                }
                long deadline = System.nanoTime() + TIMEOUT.toNanos();
                while (consumed < n) {
                    check(System.nanoTime() < deadline, "timed out after " + TIMEOUT.toSeconds()
                        + "s: consumed " + consumed + " of " + n + " records");
                    for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                        List<Expected> list = expected.get(r.partition());
                        check(list != null, "record from unexpected partition " + r.partition());
                        int idx = next.getOrDefault(r.partition(), 0);
                        check(idx < list.size(), "partition " + r.partition() + ": extra record at offset "
                            + r.offset());
                        Expected e = list.get(idx);
                        String where = "partition " + r.partition() + " offset " + r.offset();
                        check(r.offset() == e.offset, where + ": want offset " + e.offset + " (record " + e.seq
                            + "), order or gap mismatch");
                        check(e.key.equals(r.key()), where + ": key " + r.key() + ", want " + e.key);
                        check(e.value.equals(r.value()), where + ": value " + r.value() + ", want " + e.value);
                        check(Integer.toString(e.seq).equals(header(r.headers(), "seq")),
                            where + ": header seq=" + header(r.headers(), "seq") + ", want " + e.seq);
                        check("java".equals(header(r.headers(), "client")),
                            where + ": header client=" + header(r.headers(), "client") + ", want java");
                        next.put(r.partition(), idx + 1);
                        consumed++;
                    }
                }
                // Nothing beyond what was produced.
                Collection<ConsumerRecord<String, String>> extra = new ArrayList<>();
                consumer.poll(Duration.ofMillis(300)).forEach(extra::add);
                check(extra.isEmpty(), extra.size() + " unexpected extra records after the " + n + " produced");
            }

            progress("deleteTopics " + topic);
            get(admin.deleteTopics(List.of(topic)).all(), "deleteTopics (cleanup)");
            StringBuilder split = new StringBuilder();
            for (int p = 0; p < partitions; p++) {
                split.append(p == 0 ? "" : "/").append(expected.get(p).size());
            }
            return "roundtrip: " + consumed + " records (" + split + " over " + partitions
                + " partitions) produced idempotent acks=all and consumed back in order on " + topic;
        }
    }
}
