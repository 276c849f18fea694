DROP TABLE template_labels;
DROP TABLE template_artifacts;
DROP TABLE template_versions;
DROP TABLE templates;
